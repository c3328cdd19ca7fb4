"""Tiny transformers models built from a config, with no Hub download: for tests and the embedded default.

Each builder writes a folder that ``AutoModel`` / ``AutoProcessor.from_pretrained`` load exactly like a
Hub checkpoint (``save_pretrained``: safetensors weights, ``config.json``, tokenizer and image-processor
files). The tokenizer is a ``tokenizers`` word-level model wrapped in ``PreTrainedTokenizerFast``: lower-cased,
split on whitespace and punctuation, unknown words mapped to ``[UNK]``, every text wrapped in
``[BOS] ... [EOS]``. Its vocabulary is what you pass (for example the words of the training captions).

- :func:`build_tiny_clip`: a ``CLIPModel`` (a small ViT and a small causal text transformer).
- :func:`build_tiny_siglip`: a ``SiglipModel`` of the same shape, for code paths that must not assume CLIP.
- :func:`build_tiny_image_text_to_text`: a tiny LLaVA-style chat model (``AutoModelForImageTextToText``).
- :func:`build_tiny_blip_retrieval`: a ``BlipForImageTextRetrieval`` (BLIP's ITM and ITC heads).
- :func:`build_tiny_idefics2`: a tiny Idefics2 (image splitting on in its processor, as the real one).

Weights are random (seeded): a built model runs, it knows nothing until trained.

    >>> import tempfile
    >>> from transformers import AutoModel, AutoProcessor
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = build_tiny_clip(tmp, words=["a", "red", "circle"], seed=0)
    ...     model, processor = AutoModel.from_pretrained(path), AutoProcessor.from_pretrained(path)
    ...     processor.tokenizer("a red square")["input_ids"]
    [2, 4, 5, 1, 3]
    >>> type(model).__name__
    'CLIPModel'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

# torch, transformers and tokenizers (the [eval] extra; seconds to import) are imported by each builder:
# words_of and the constants serve callers that never build a model (bench scripts sizing a vocabulary).

PAD, UNK, BOS, EOS = "[PAD]", "[UNK]", "[BOS]", "[EOS]"
# Ids 0..3. CLIP's text model pools at the first EOS; an ``eos_token_id`` of 2 would select its legacy
# "highest id" pooling, so EOS is 3.
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS)
WORD_PATTERN = re.compile(r"\w+|[^\w\s]")


def words_of(texts: Iterable[str]) -> list[str]:
    """The sorted distinct lower-cased words (and punctuation marks) of ``texts``.

    >>> words_of(["A red circle.", "two red stars"])
    ['.', 'a', 'circle', 'red', 'stars', 'two']
    """
    return sorted({w for text in texts for w in WORD_PATTERN.findall(text.lower())})


def build_word_tokenizer(words: Iterable[str], model_max_length: int = 32):
    """A ``PreTrainedTokenizerFast`` over ``words`` (special tokens first, then the words in order given)."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    for word in words:
        vocab.setdefault(word.lower(), len(vocab))
    backend = Tokenizer(WordLevel(vocab=vocab, unk_token=UNK))
    backend.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}",
        pair=f"{BOS} $A {EOS} $B {EOS}",
        special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD,
        unk_token=UNK,
        bos_token=BOS,
        eos_token=EOS,
        model_max_length=model_max_length,
    )


def _image_processor(image_size: int):
    """CLIP normalisation; the whole image squashed to a square (no crop: objects sit near the edges)."""
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(
        size={"height": image_size, "width": image_size},
        do_center_crop=False,
        crop_size={"height": image_size, "width": image_size},
    )


def tiny_clip_config(vocab_size: int, image_size: int = 48, patch_size: int = 8, hidden_size: int = 128,
                     layers: int = 4, heads: int = 4, projection_dim: int = 128, max_text_length: int = 32):
    """A small ``CLIPConfig``: about 1.7 M parameters with the defaults (7 MB in float32)."""
    from transformers import CLIPConfig, CLIPTextConfig, CLIPVisionConfig

    common = dict(hidden_size=hidden_size, intermediate_size=hidden_size * 2, num_hidden_layers=layers,
                  num_attention_heads=heads, projection_dim=projection_dim)
    text = CLIPTextConfig(vocab_size=vocab_size, max_position_embeddings=max_text_length,
                          pad_token_id=0, bos_token_id=2, eos_token_id=3, **common)
    vision = CLIPVisionConfig(image_size=image_size, patch_size=patch_size, num_channels=3, **common)
    return CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=projection_dim)


def build_tiny_clip(out_dir, words: Iterable[str], seed: int = 0, image_size: int = 48, **config_options) -> Path:
    """Write a randomly initialised tiny ``CLIPModel`` with its ``CLIPProcessor`` to ``out_dir``."""
    import torch
    from transformers import CLIPModel, CLIPProcessor

    out_dir = Path(out_dir)
    tokenizer = build_word_tokenizer(words, model_max_length=config_options.get("max_text_length", 32))
    config = tiny_clip_config(len(tokenizer), image_size=image_size, **config_options)
    torch.manual_seed(seed)
    model = CLIPModel(config)
    model.save_pretrained(out_dir)
    CLIPProcessor(image_processor=_image_processor(image_size), tokenizer=tokenizer).save_pretrained(out_dir)
    return out_dir


def build_tiny_siglip(out_dir, words: Iterable[str], seed: int = 0, image_size: int = 48, hidden_size: int = 64,
                      layers: int = 2, heads: int = 4, max_text_length: int = 32) -> Path:
    """Write a randomly initialised tiny ``SiglipModel`` with a ``SiglipProcessor`` to ``out_dir``.

    SigLIP pools text at the last position, so its processor pads to ``max_text_length`` (as the real
    checkpoints are used).
    """
    import torch
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipProcessor

    out_dir = Path(out_dir)
    tokenizer = build_word_tokenizer(words, model_max_length=max_text_length)
    common = dict(hidden_size=hidden_size, intermediate_size=hidden_size * 2, num_hidden_layers=layers,
                  num_attention_heads=heads)
    config = SiglipConfig(
        text_config=dict(vocab_size=len(tokenizer), max_position_embeddings=max_text_length,
                         pad_token_id=0, bos_token_id=2, eos_token_id=3, **common),
        vision_config=dict(image_size=image_size, patch_size=8, **common),
    )
    torch.manual_seed(seed)
    model = SiglipModel(config)
    model.save_pretrained(out_dir)
    image_processor = SiglipImageProcessor(size={"height": image_size, "width": image_size})
    SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out_dir)
    return out_dir


def build_tiny_image_text_to_text(out_dir, words: Iterable[str] = (), seed: int = 0, image_size: int = 32) -> Path:
    """Write a randomly initialised tiny LLaVA (CLIP vision tower + Llama) with its ``LlavaProcessor``.

    Loads with ``AutoModelForImageTextToText`` / ``AutoProcessor``; the chat template puts the image
    placeholder first, then the user text. Meant for harness plumbing tests: its answers are noise.
    """
    import torch
    from transformers import (CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration,
                              LlavaProcessor)

    out_dir = Path(out_dir)
    base_words = ["a", "b", "first", "second", "does", "this", "image", "best", "match", "which", "better",
                  "aligns", "with", "the", "description", "or", "choices", ":", ",", "?", "(", ")", '"', "."]
    tokenizer = build_word_tokenizer(list(base_words) + list(words), model_max_length=512)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    image_token_id = tokenizer.convert_tokens_to_ids("<image>")
    tokenizer.chat_template = (
        "{% for message in messages %}{{ message['role'] }}: "
        "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
        "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image> "
        "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}{{ '\\n' }}"
        "{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
    )
    patch_size = 8
    vision = CLIPVisionConfig(image_size=image_size, patch_size=patch_size, hidden_size=32, intermediate_size=64,
                              num_hidden_layers=2, num_attention_heads=2, projection_dim=32)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                       pad_token_id=0, bos_token_id=2, eos_token_id=3)
    config = LlavaConfig(vision_config=vision.to_dict(), text_config=text.to_dict(), image_token_index=image_token_id,
                         vision_feature_layer=-1, vision_feature_select_strategy="full")
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = 0
    model.generation_config.eos_token_id = 3
    model.save_pretrained(out_dir)
    processor = LlavaProcessor(
        image_processor=_image_processor(image_size),
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="full",
        num_additional_image_tokens=1,  # the CLS token: "full" keeps it
        chat_template=tokenizer.chat_template,
    )
    processor.save_pretrained(out_dir)
    return out_dir


def build_tiny_blip_retrieval(out_dir, words: Iterable[str], seed: int = 0, image_size: int = 32) -> Path:
    """Write a randomly initialised tiny ``BlipForImageTextRetrieval`` with a ``BlipProcessor`` to ``out_dir``
    (the architecture of ``Salesforce/blip-itm-base-flickr``, whose ITC heads the VisMin paper scored)."""
    import torch
    from transformers import BlipConfig, BlipForImageTextRetrieval, BlipImageProcessor, BlipProcessor

    out_dir = Path(out_dir)
    tokenizer = build_word_tokenizer(words, model_max_length=32)
    common = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    config = BlipConfig(
        vision_config=dict(image_size=image_size, patch_size=8, **common),
        text_config=dict(vocab_size=len(tokenizer), max_position_embeddings=32, encoder_hidden_size=32,
                         pad_token_id=0, bos_token_id=2, sep_token_id=3, **common),
        image_text_hidden_size=16,
    )
    torch.manual_seed(seed)
    BlipForImageTextRetrieval(config).save_pretrained(out_dir)
    image_processor = BlipImageProcessor(size={"height": image_size, "width": image_size})
    BlipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out_dir)
    return out_dir


def build_tiny_idefics2(out_dir, words: Iterable[str] = (), seed: int = 0, image_size: int = 32) -> Path:
    """Write a randomly initialised tiny ``Idefics2ForConditionalGeneration`` with an ``Idefics2Processor``
    whose image processor splits images (``do_image_splitting=True``, the default of
    ``HuggingFaceM4/idefics2-8b``'s processor, which the VisMin paper turned off)."""
    import torch
    from transformers import Idefics2Config, Idefics2ForConditionalGeneration, Idefics2ImageProcessor, Idefics2Processor

    out_dir = Path(out_dir)
    base_words = ["a", "b", "first", "second", "which", "image", "best", "match", "the", "?", ",", "."]
    tokenizer = build_word_tokenizer(base_words + list(words), model_max_length=512)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>", "<fake_token_around_image>",
                                                                "<end_of_utterance>"]})
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    config = Idefics2Config(
        vision_config=dict(image_size=image_size, patch_size=8, **small),
        perceiver_config=dict(hidden_size=32, resampler_n_latents=4, resampler_depth=1, resampler_n_heads=2,
                              resampler_head_dim=8, num_key_value_heads=1),
        text_config=dict(vocab_size=len(tokenizer), num_key_value_heads=1, max_position_embeddings=512,
                         pad_token_id=0, bos_token_id=2, eos_token_id=3, **small),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
    )
    torch.manual_seed(seed)
    model = Idefics2ForConditionalGeneration(config)
    model.generation_config.pad_token_id, model.generation_config.eos_token_id = 0, 3
    model.save_pretrained(out_dir)
    template = ("{% for message in messages %}{{ message['role'] }}: {% for part in message['content'] %}"
                "{% if part['type'] == 'image' %}<image>{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
                "{% endfor %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}")
    image_processor = Idefics2ImageProcessor(size={"longest_edge": image_size, "shortest_edge": image_size // 2},
                                             do_image_splitting=True)
    Idefics2Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=4,
                      chat_template=template).save_pretrained(out_dir)
    return out_dir
