"""Chat (image-text-to-text) models: questions with images in, text out, batched.

A task gives each sample a list of *turns*: ``(question, image positions, options)``. VisMin asks four
(:func:`diffbench.vismin.schema.questions`); difference captioning asks one, with both images and no
options. How the turns reach the model is a :class:`ChatProtocol`, recorded in ``run.json``:

- ``answer="generate"`` (the paper's protocol, ``evals/mllm_inference.py``): greedy generation of up to
  ``max_new_tokens`` tokens; VisMin reads the text with the official lenient parser when it is scored.
  ``answer="likelihood"``: the option whose tokens, appended to the prompt, have the larger summed
  log-probability (deterministic, no parsing; an option of ours, not the paper's).
- ``image_handling="separate"``: each image its own image input (as the paper gave Idefics2, with
  ``do_image_splitting=False``: ``evals/vlm/idefics2.py``); ``"combined"``: the images pasted side by
  side into one (as the paper gave LLaVA-1.6: ``evals/vlm/llava.py`` calls ``get_combined_image``, whose
  file is missing from the repository: the side-by-side layout of :func:`combine_images` is inferred).
- ``image_splitting``: the processor's ``do_image_splitting`` where it has one; ``None`` leaves it as the
  processor says (a preset sets what the paper set: off for Idefics2). The dtype, asked ``auto``, is the
  one the model's config names (:func:`~diffbench.harness.runtime.config_dtype`). run.json's ``settings``
  says which value each had and where it came from (option, preset, model config, processor).
- ``prompt_template``: ``None`` renders one user turn (images first, then the question) with the
  processor's chat template and the generation prompt; a string is the raw prompt instead, with
  ``{question}`` and either ``{images}`` (the processor's image token, once a picture) or the model's
  image token written out: the paper's LLaVA-1.6 prompt is ``"<image> [INST] {question} [/INST]"``
  (``evals/vlm/llava.py``, ``prepare_input``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from PIL import Image

from diffbench.backends.openai_chat import ChatAPIError, ChatRequest
from diffbench.harness import runtime
from diffbench.harness.data import slice_inputs, split_good_bad, to_device
from diffbench.harness.options import source_of


@dataclass(frozen=True)
class ChatProtocol:
    answer: str = "generate"
    max_new_tokens: int = 128
    image_handling: str = "separate"
    image_splitting: bool | None = None  # do_image_splitting where the processor has it; None: its own
    prompt_template: str | None = None

    def record(self) -> dict:
        return asdict(self)


def combine_images(images: list[Image.Image], background=(255, 255, 255)) -> Image.Image:
    """The images side by side, left to right, on one canvas as tall as the tallest (each centred
    vertically): the paper's ``get_combined_image`` for LLaVA-1.6, whose exact layout is not published.

    >>> combine_images([Image.new("RGB", (4, 3)), Image.new("RGB", (2, 5))]).size
    (6, 5)
    """
    width, height = sum(i.width for i in images), max(i.height for i in images)
    canvas = Image.new("RGB", (width, height), background)
    x = 0
    for image in images:
        canvas.paste(image, (x, (height - image.height) // 2))
        x += image.width
    return canvas


def image_token(processor) -> str:
    token = getattr(processor, "image_token", None) or getattr(processor.tokenizer, "image_token", None)
    if not token:
        raise ValueError(f"{type(processor).__name__} names no image token; a prompt template needs one for {{images}}")
    return str(token)


def render_prompt(processor, question: str, num_images: int, template: str | None = None) -> str:
    """The text the processor receives for one turn (see the module docstring)."""
    if template is not None:
        images = " ".join([image_token(processor)] * num_images) if "{images}" in template else ""
        return template.format(images=images, question=question)
    content = [{"type": "image"} for _ in range(num_images)] + [{"type": "text", "text": question}]
    messages = [{"role": "user", "content": content}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def chat_prompt(processor, question: str, num_images: int) -> str:
    """The question as one user turn (images first), rendered with the chat template."""
    return render_prompt(processor, question, num_images)


def prepare_processor(processor, protocol: ChatProtocol) -> dict:
    """Apply the protocol's processor settings; returns what was applied (for the run record)."""
    applied = {}
    image_processor = getattr(processor, "image_processor", None)
    if protocol.image_splitting is not None and hasattr(image_processor, "do_image_splitting"):
        image_processor.do_image_splitting = protocol.image_splitting
        applied["do_image_splitting"] = protocol.image_splitting
    return applied


def option_span(tokenizer, prompt: str, option: str) -> tuple[int, int, int]:
    """``(offset, length, total)`` of the option's tokens in the tokenised ``prompt + option`` (raw text,
    before the processor expands image placeholders): the tokens after the longest common prefix with
    the tokenised prompt, as many as the option adds. Robust to tokenisers that append an end token."""
    full = tokenizer(prompt + option)["input_ids"]
    alone = tokenizer(prompt)["input_ids"]
    common = 0
    while common < min(len(full), len(alone)) and full[common] == alone[common]:
        common += 1
    length = len(full) - len(alone)
    if length < 1:
        raise ValueError(f"option {option!r} adds no token to the prompt")
    return common, length, len(full)


def turn_inputs(item: dict, turns_of, protocol) -> list[tuple]:
    """A loaded sample's turns as ``(question, images, options)``: each turn's images picked from the
    sample, pasted into one when ``protocol.image_handling`` is ``combined`` (the local and API collates)."""
    turns = []
    for question, positions, options in turns_of(item):
        pictures = [item["images"][p] for p in positions]
        if protocol.image_handling == "combined" and len(pictures) > 1:
            pictures = [combine_images(pictures)]
        turns.append((question, pictures, options))
    return turns


class ChatCollate:
    """Runs in a DataLoader worker: the processor over a batch's turns, grouped by image count.

    ``turns_of(item)``: the sample's turns (module-level, so that it pickles into spawned workers).
    Each batch carries, per sample, the question and rendered prompt of every turn (for the record).
    """

    def __init__(self, processor, protocol: ChatProtocol, turns_of):
        self.processor, self.protocol, self.turns_of = processor, protocol, turns_of
        self._spans = {}

    def __call__(self, items: list[dict]) -> dict:
        good, bad = split_good_bad(items)
        batch = {"indices": [item["index"] for item in good], "ids": [item["id"] for item in good], "bad": bad,
                 "groups": [], "turns": []}
        by_count: dict[int, list] = {}
        for row, item in enumerate(good):
            asked = []
            for q, (question, pictures, options) in enumerate(turn_inputs(item, self.turns_of, self.protocol)):
                prompt = render_prompt(self.processor, question, len(pictures), self.protocol.prompt_template)
                asked.append({"question": question, "prompt": prompt, "options": options})
                by_count.setdefault(len(pictures), []).append((row, q, prompt, pictures, options))
            batch["turns"].append(asked)
        tokenizer = self.processor.tokenizer
        generate = self.protocol.answer == "generate"
        for count in sorted(by_count):
            texts, images, slots, spans = [], [], [], []
            for row, q, prompt, pictures, options in by_count[count]:
                if generate:
                    texts.append(prompt)
                    images.append(pictures)
                    slots.append((row, q, None))
                    continue
                if not options:
                    raise ValueError("answer by likelihood needs options; this task generates free text")
                for option in options:
                    key = (prompt, option)
                    if key not in self._spans:
                        self._spans[key] = option_span(tokenizer, prompt, option)
                    texts.append(prompt + option)
                    images.append(pictures)
                    slots.append((row, q, option))
                    spans.append(self._spans[key])
            tokenizer.padding_side = "left" if generate else "right"
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
    """One batch -> ``[(index, record), ...]``; ``to_record(sample_id, outputs, turns)`` makes a task's
    record from the outputs of the sample's turns (generated text, or the chosen option)."""

    def __init__(self, model, processor, device, dtype, runner, protocol: ChatProtocol, to_record):
        self.model, self.processor, self.device, self.dtype = model, processor, device, dtype
        self.runner, self.protocol, self.to_record = runner, protocol, to_record

    def __call__(self, batch: dict) -> list[tuple[int, dict]]:
        import torch

        outputs = [dict() for _ in batch["indices"]]
        for group in batch["groups"]:
            inputs = to_device(group["inputs"], self.device, self.dtype)
            rows = len(group["slots"])
            with torch.inference_mode():
                if self.protocol.answer == "generate":
                    length = inputs["input_ids"].shape[1]

                    def chunk(start, stop):
                        out = self.model.generate(**slice_inputs(inputs, rows, start, stop), do_sample=False,
                                                  max_new_tokens=self.protocol.max_new_tokens)
                        return out[:, length:]

                    pieces = [p.cpu() for p in self.runner.run(chunk, rows)]
                    texts = [t for p in pieces for t in self.processor.batch_decode(p, skip_special_tokens=True)]
                    for (row, q, _), text in zip(group["slots"], texts):
                        outputs[row][q] = text.strip()
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
                        outputs[row][q] = option
        return [(index, self.to_record(sample_id, [outputs[i][q] for q in sorted(outputs[i])], batch["turns"][i]))
                for i, (index, sample_id) in enumerate(zip(batch["indices"], batch["ids"]))]


# -- an OpenAI-compatible chat API instead of a local model (diffbench.backends.openai_chat) --------------


class ApiStopError(ValueError):
    """A request failed for good (401, 400, retries used up, nothing listening): the run stops, answers kept."""


class ApiCollate:
    """Runs in a DataLoader worker: each turn as a ``ChatRequest`` (question text, PIL images first,
    labelled with the sample id and turn for the client's warnings)."""

    def __init__(self, protocol: ChatProtocol, turns_of):
        self.protocol, self.turns_of = protocol, turns_of

    def __call__(self, items: list[dict]) -> dict:
        good, bad = split_good_bad(items)
        batch = {"indices": [item["index"] for item in good], "ids": [item["id"] for item in good], "bad": bad,
                 "requests": [], "turns": []}
        for row, item in enumerate(good):
            asked = []
            for q, (question, pictures, options) in enumerate(turn_inputs(item, self.turns_of, self.protocol)):
                asked.append({"question": question, "prompt": question, "options": options})
                label = f"sample {item['id']}, turn {q + 1}"
                batch["requests"].append((row, q, ChatRequest(question, tuple(pictures), label=label)))
            batch["turns"].append(asked)
        return batch


class ApiStep:
    """One batch -> ``[(index, record), ...]`` through ``client.generate`` (cached, ``concurrency`` in flight)."""

    def __init__(self, client, to_record):
        self.client, self.to_record = client, to_record
        self.answered = 0  # answers this run got (cached as they came): whether a stop leaves any to resume from

    def __call__(self, batch: dict) -> list[tuple[int, dict]]:
        try:
            texts = self.client.generate([request for _, _, request in batch["requests"]])
        except ChatAPIError as err:
            raise ApiStopError(self.stop_message(err)) from None
        self.answered += len(texts)
        outputs = [dict() for _ in batch["indices"]]
        for (row, q, _), text in zip(batch["requests"], texts):
            outputs[row][q] = (text or "").strip()
        return [(index, self.to_record(sample_id, [outputs[i][q] for q in sorted(outputs[i])], batch["turns"][i]))
                for i, (index, sample_id) in enumerate(zip(batch["indices"], batch["ids"]))]

    def stop_message(self, err) -> str:
        """One line: what failed (the client's message says why) and, when some answers came, where they wait."""
        what = f"the API refused a request (HTTP {err.status})" if err.status else "the API could not be asked"
        kept = ("" if not self.answered and all(answer is None for answer in err.answers) else
                f"; the answers so far are cached in {self.client.cache_dir} and the same command resumes from them")
        return f"{what}: {err}{kept}"


class ChatTask:
    """What a task asked of a chat model shares: its protocol from the options, and its step for a local
    model or for an API. A task sets ``default_max_new_tokens`` and defines ``turns_of(options)`` and
    ``to_record(sample_id, outputs, turns)``."""

    default_max_new_tokens = 128

    def turns_of(self, options):
        raise NotImplementedError

    def chat_protocol(self, options) -> ChatProtocol:
        return ChatProtocol(answer=options.answer, max_new_tokens=options.max_new_tokens or self.default_max_new_tokens,
                            image_handling=options.image_handling or "separate",
                            image_splitting=options.image_splitting, prompt_template=options.prompt_template)

    def auto_dtype(self, device, kind) -> tuple[str, str, str | None]:
        """The dtype the model's config names (float32 on the CPU for a half precision: see
        :func:`~diffbench.harness.runtime.config_dtype`)."""
        return runtime.config_dtype(kind.config_dtype, device)

    def settings(self, options, processor=None) -> dict:
        """``image_splitting`` as given (option, preset) or, once loaded, as the processor has it (``None``:
        it has no image splitting). An API model's images are the API's: nothing recorded."""
        if options.api_base:
            return {}
        if options.image_splitting is not None:
            return {"image_splitting": {"value": options.image_splitting,
                                        "from": source_of(options, "image_splitting")}}
        if processor is None:
            return {}
        own = getattr(getattr(processor, "image_processor", None), "do_image_splitting", None)
        return {"image_splitting": {"value": own, "from": runtime.FROM_PROCESSOR}}

    def build_step(self, model, processor, device, dtype, runner, options):
        protocol = self.chat_protocol(options)
        applied = prepare_processor(processor, protocol)  # recorded in run.json's environment
        return (ChatCollate(processor, protocol, self.turns_of(options)),
                ChatStep(model, processor, device, dtype, runner, protocol, self.to_record), applied)

    def build_api_step(self, client, options):
        protocol = self.chat_protocol(options)
        if protocol.answer != "generate":
            raise ValueError("an API model answers by generating; --answer likelihood needs a local model")
        return ApiCollate(protocol, self.turns_of(options)), ApiStep(client, self.to_record)
