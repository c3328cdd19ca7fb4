"""VisMin with a chat (image-text-to-text) model: the four official questions of each sample.

Text task, once per image (expected ``A`` for image 0, ``B`` for image 1)::

    Does this image best match: (A) {text_0}, or (B) {text_1}? Choices: A, B.

Image task, once per caption, both images given (expected ``First`` for text 0, ``Second`` for text 1)::

    Which image better aligns with the description: "{caption}"? Choices: First, Second.

Each question is one user turn (the images first, then the question) rendered by the processor's chat
template with the generation prompt. Two answer modes:

- ``likelihood``: the answer is the option (``A``/``B``, ``First``/``Second``) whose tokens, appended
  to the prompt, have the larger summed log-probability. Deterministic, no generation; the submission
  holds the chosen option.
- ``generate``: greedy generation of up to ``max_new_tokens`` tokens; the submission holds the raw
  text, which the official lenient parser reads when it is scored.
"""

from __future__ import annotations

TEXT_QUESTION = "Does this image best match: (A) {text_0}, or (B) {text_1}? Choices: A, B."
IMAGE_QUESTION = 'Which image better aligns with the description: "{caption}"? Choices: First, Second.'
ANSWER_COLUMNS = ("Text_Q0", "Text_Q1", "Image_Q0", "Image_Q1")
TEXT_OPTIONS = ("A", "B")
IMAGE_OPTIONS = ("First", "Second")


def questions(text_0: str, text_1: str) -> list[tuple[str, tuple[int, ...], tuple[str, str]]]:
    """The four questions of a sample, in submission order: ``(question, image positions, options)``."""
    text_question = TEXT_QUESTION.format(text_0=text_0, text_1=text_1)
    return [
        (text_question, (0,), TEXT_OPTIONS),
        (text_question, (1,), TEXT_OPTIONS),
        (IMAGE_QUESTION.format(caption=text_0), (0, 1), IMAGE_OPTIONS),
        (IMAGE_QUESTION.format(caption=text_1), (0, 1), IMAGE_OPTIONS),
    ]


def chat_prompt(processor, question: str, num_images: int) -> str:
    """The question as one user turn (images first), rendered with the generation prompt."""
    content = [{"type": "image"} for _ in range(num_images)] + [{"type": "text", "text": question}]
    messages = [{"role": "user", "content": content}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def option_span(tokenizer, prompt: str, option: str) -> tuple[int, int]:
    """``(offset, length)`` of the option's tokens in the tokenised ``prompt + option`` (raw text, before
    the processor expands image placeholders): the tokens after the longest common prefix with the
    tokenised prompt, as many as the option adds. Robust to tokenisers that append an end token."""
    full = tokenizer(prompt + option)["input_ids"]
    alone = tokenizer(prompt)["input_ids"]
    common = 0
    while common < min(len(full), len(alone)) and full[common] == alone[common]:
        common += 1
    length = len(full) - len(alone)
    if length < 1:
        raise ValueError(f"option {option!r} adds no token to the prompt")
    return common, length, len(full)


class ChatCollate:
    """Runs in a DataLoader worker: the processor over a batch's questions, grouped by image count
    (the two text questions, one image each; the two image questions, two images each)."""

    def __init__(self, processor, answer: str):
        self.processor, self.answer = processor, answer
        self._spans = {}

    def __call__(self, items: list[dict]) -> dict:
        from diffbench.harness.data import split_good_bad

        good, bad = split_good_bad(items)
        batch = {"indices": [item["index"] for item in good], "ids": [item["id"] for item in good], "bad": bad,
                 "groups": []}
        if not good:
            return batch
        tokenizer = self.processor.tokenizer
        for group in ((0, 1), (2, 3)):  # question numbers sharing an image count
            texts, images, slots, spans = [], [], [], []
            for row, item in enumerate(good):
                asked = questions(*item["texts"])
                for q in group:
                    question, positions, options = asked[q]
                    prompt = chat_prompt(self.processor, question, len(positions))
                    pictures = [item["images"][p] for p in positions]
                    if self.answer == "generate":
                        texts.append(prompt)
                        images.append(pictures)
                        slots.append((row, q, None))
                        continue
                    for option in options:
                        key = (prompt, option)
                        if key not in self._spans:
                            self._spans[key] = option_span(tokenizer, prompt, option)
                        texts.append(prompt + option)
                        images.append(pictures)
                        slots.append((row, q, option))
                        spans.append(self._spans[key])
            tokenizer.padding_side = "left" if self.answer == "generate" else "right"
            inputs = dict(self.processor(text=texts, images=images, padding=True, return_tensors="pt"))
            batch["groups"].append({"inputs": inputs, "slots": slots, "spans": spans})
        return batch


def option_logprobs(model, inputs: dict, spans: list[tuple[int, int, int]]):
    """Summed log-probability of each row's option tokens (rows right-padded) -> ``[rows]`` tensor.

    ``spans``: :func:`option_span` of each row. Image placeholders expand by the same number of tokens in
    the prompt and in prompt + option, so the option starts at ``common + (tokens - raw tokens)``.
    """
    import torch

    ids = inputs["input_ids"]
    device = ids.device
    logits = model(**inputs).logits  # [rows, length, vocab]
    lengths = inputs["attention_mask"].sum(dim=1)
    common, counts, raw = (torch.tensor(column, device=device) for column in zip(*spans))
    starts = common + lengths - raw
    offsets = torch.arange(int(counts.max()), device=device)
    valid = offsets[None, :] < counts[:, None]  # [rows, width]
    positions = torch.where(valid, starts[:, None] + offsets[None, :], starts[:, None])
    rows = torch.arange(ids.shape[0], device=device)[:, None]
    predicting = logits[rows, positions - 1].float().log_softmax(dim=-1)  # [rows, width, vocab]
    picked = predicting.gather(2, ids[rows, positions][:, :, None]).squeeze(2)
    return (picked * valid).sum(dim=1)


class ChatStep:
    """One batch -> ``[(index, {"id", "Text_Q0", ...}), ...]``."""

    columns = ANSWER_COLUMNS

    def __init__(self, model, processor, device, dtype, runner, answer: str, max_new_tokens: int = 16):
        self.model, self.processor, self.device, self.dtype = model, processor, device, dtype
        self.runner, self.answer, self.max_new_tokens = runner, answer, max_new_tokens

    def __call__(self, batch: dict) -> list[tuple[int, dict]]:
        import torch

        from diffbench.harness.data import slice_inputs, to_device

        n = len(batch["indices"])
        answers = [dict() for _ in range(n)]
        for group in batch["groups"]:
            inputs = to_device(group["inputs"], self.device, self.dtype)
            rows = len(group["slots"])
            with torch.inference_mode():
                if self.answer == "generate":
                    length = inputs["input_ids"].shape[1]

                    def chunk(start, stop):
                        out = self.model.generate(**slice_inputs(inputs, rows, start, stop), do_sample=False,
                                                  max_new_tokens=self.max_new_tokens)
                        return out[:, length:]

                    pieces = [p.cpu() for p in self.runner.run(chunk, rows)]
                    texts = [t for p in pieces for t in self.processor.batch_decode(p, skip_special_tokens=True)]
                    for (row, q, _), text in zip(group["slots"], texts):
                        answers[row][ANSWER_COLUMNS[q]] = text.strip()
                else:
                    spans = group["spans"]

                    def chunk(start, stop):
                        return option_logprobs(self.model, slice_inputs(inputs, rows, start, stop), spans[start:stop])

                    scores = torch.cat(self.runner.run(chunk, rows)).cpu().tolist()  # one host sync
                    best = {}
                    for (row, q, option), score in zip(group["slots"], scores):
                        if (row, q) not in best or score > best[(row, q)][0]:
                            best[(row, q)] = (score, option)
                    for (row, q), (_, option) in best.items():
                        answers[row][ANSWER_COLUMNS[q]] = option
        return [(index, {"id": sample_id, **{c: answers[i][c] for c in ANSWER_COLUMNS}})
                for i, (index, sample_id) in enumerate(zip(batch["indices"], batch["ids"]))]
