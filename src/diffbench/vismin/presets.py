"""The VisMin paper's rows as presets: which model each published row is, and how the paper ran it.

One :class:`Preset` per model row of the published tables (``reference/vismin_published_results.csv``,
from the project page; the human and chance rows are not models). ``table_name`` is the row's name
exactly as the table writes it; ``name`` is the short name the CLI takes (``--preset NAME``).

Interface (stable; the task layer reads only these):

- :data:`PRESETS`: ``dict`` preset name -> :class:`Preset`, in the published order (zero-shot table,
  then fine-tuned table).
- :func:`get_preset` ``(name) -> Preset``: by preset name, or by the table's own row name when that
  names one row; anything else raises :class:`UnknownPresetError` (a ``ValueError``) listing every
  valid name.
- :func:`published_scores` ``(preset) -> dict``: the row's published cells (``object_text`` ... ``avg``).
- :func:`markdown_table` ``(presets=None) -> str``: the README table, row -> command.
- :func:`preset_settings` ``(name) -> dict``: the row as :class:`~diffbench.harness.options.RunOptions` fields;
  :func:`apply_preset` ``(options) -> RunOptions``: those fields filled where the options leave them unset
  (VisMin's task applies it, so the CLI and the Python API run a preset identically); a row this harness
  cannot run as published is refused in one line saying why.

Where each fact comes from (rabiulcste/vismin at 29ce2c0, the files the paper's numbers were made with):

- ``evals/vlm/model_factory.py``: the model names the evaluation code accepts (open_clip ``ViT-B/32``,
  ``ViT-B/16``, ``ViT-L-14``; ``google/siglip-base-patch16-256``, ``google/siglip-large-patch16-384``;
  ``blip-coco-base``; ``llava-hf/llava-v1.6-mistral-7b-hf``; ``HuggingFaceM4/idefics2-8b``;
  ``OpenGVLab/InternVL-Chat-V1-5``; ``gemini``; ``gpt-4-vision-preview``).
- ``evals/contrastive_inference.py``: contrastive models in float32 (no autocast), ``--pretrained``
  defaults to ``openai``; ``evals/vlm/clip.py``: open_clip ``logit_scale * cos``.
- ``evals/vlm/blip.py`` + ``evals/vlm/model_zoo/blip_models.py``: BLIP scores are **ITC**: dot products of
  the normalised ``vision_proj`` / ``text_proj`` embeddings (both ``predict`` and the misnamed
  ``predict_itm``); the ITM head is never called for VisMin. ``BlipModel`` passes ``"blip-coco-base"``
  as ``BLIPModelWrapper``'s *root_dir*, whose ``variant`` then stays at its default
  ``"blip-flickr-base"``: the code as published downloads ``model_base_retrieval_flickr.pth``.
- ``evals/mllm_inference.py`` asks ``predict_batch(..., max_new_tokens=128)``; ``evals/vlm/llava.py``'s
  ``predict_batch`` drops that argument and calls ``predict`` (default 64 new tokens) with the
  hand-written prompt ``<image> [INST] {question} [/INST]`` and, for two images, ``get_combined_image``
  (its helper file is missing upstream); ``temperature=0.2`` without ``do_sample`` is greedy.
  ``evals/vlm/idefics2.py``: processor ``HuggingFaceM4/idefics2-8b`` with ``do_image_splitting=False``
  (also for fine-tuned weights), two ``{"type": "image"}`` parts then the text, float16, greedy.
  ``evals/vlm/internvl.py``: remote code, bfloat16, up to 6 448-px tiles + thumbnail per image, the
  tiles of both images concatenated, ``max_new_tokens=512``, greedy, through the model's own ``chat``.
- Hub model cards (collection ``mair-lab/vismin``): ``mair-lab/vismin-clip-vit-large`` (an open_clip
  ``model.pt`` for ``ViT-L-14``, parent ``openai/clip-vit-large-patch14``) and
  ``mair-lab/vismin-idefics2-8b`` (QLoRA fine-tune of Idefics2; processor from
  ``HuggingFaceM4/idefics2-8b`` with ``do_image_splitting=False``).
- Project page (``index.html``): the fine-tuned table's rows ``CLIP``/``VisMin-CLIP``/``Idefics2``/
  ``Idefics2-VisMin``; "All models utilize ViT-L-14 as the vision encoder" (caption of its OOD table).

    >>> get_preset("clip-vit-b32").table_name
    'CLIP (ViT-B/32)'
    >>> get_preset("LlaVa1.6 (7B)").max_new_tokens, get_preset("idefics2").processor_kwargs
    (64, {'do_image_splitting': False})
    >>> get_preset("gpt4")
    Traceback (most recent call last):
    ...
    diffbench.vismin.presets.UnknownPresetError: unknown preset 'gpt4'; valid presets: clip-vit-b32, clip-vit-b16, siglip-vit-b16, siglip-vit-l16, blip, coca, llava-1.6-7b, idefics2, internvl-1.5, gemini-1.0-pro, gpt-4o, clip-vit-l14, vismin-clip, idefics2-finetune-baseline, idefics2-vismin
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from diffbench.harness.models import OPEN_CLIP_PREFIX
from diffbench.harness.options import RunOptions
from diffbench.vismin.published import published_results

# -- backends: what runs a preset (the task layer maps each to its model adapter) -----------------------
#: AutoModel with get_image_features / get_text_features, cosine similarity
TRANSFORMERS_CONTRASTIVE = "transformers-contrastive"
#: BlipForImageTextRetrieval(use_itm_head=False): the ITC cosine of BLIP's retrieval heads. A separate
#: backend because AutoModel gives BlipModel for these checkpoints, whose projection layers are not the
#: retrieval heads (they would load randomly initialised).
TRANSFORMERS_BLIP_ITC = "transformers-blip-itc"
#: AutoModelForImageTextToText + processor, generate then the official lenient parser
TRANSFORMERS_CHAT = "transformers-chat"
#: open_clip.create_model_and_transforms (optional extra; needs torchvision)
OPEN_CLIP = "open_clip"
#: an OpenAI-compatible /v1/chat/completions endpoint (diffbench.backends.openai_chat)
OPENAI_API = "openai-api"
BACKENDS = (TRANSFORMERS_CONTRASTIVE, TRANSFORMERS_BLIP_ITC, TRANSFORMERS_CHAT, OPEN_CLIP, OPENAI_API)

#: what run.json's ``similarity`` says for a contrastive row (the harness records the same text)
SIMILARITY_COSINE = "cosine of projected embeddings"
SIMILARITY_BLIP_ITC = "BLIP ITC: cosine of the vision_proj / text_proj [CLS] embeddings"

VERIFIED = "verified"
INFERRED = "inferred"

_REPO = "rabiulcste/vismin"


@dataclass(frozen=True)
class Preset:
    """One published row and the settings that reproduce it.

    ``model_id`` is what the backend loads: a Hub id (transformers backends), an open_clip model name
    (``open_clip``, with ``open_clip_pretrained`` a tag, or ``weights_repo``/``weights_file`` a checkpoint
    on the Hub) or the API's model name (``openai-api``).
    ``id_status`` is ``"verified"`` when ``evidence`` cites an upstream file naming that exact id, and
    ``"inferred"`` otherwise (``evidence`` then says from what).

    Protocol fields: ``answer`` (``"generate"`` for chat models, ``None`` for contrastive scoring),
    ``max_new_tokens``, ``image_handling`` (``"combined"``: the two images pasted into one, side by side;
    ``"separate"``: two images in one message), ``prompt_template`` (``None``: the processor's chat
    template; otherwise a format string with ``{question}``), ``processor_kwargs`` (passed to
    ``AutoProcessor.from_pretrained``), ``dtype`` (the dtype the paper ran), ``greedy``.
    """

    name: str
    table: str  # "zero-shot" or "fine-tuned", as the CSV's ``table`` column
    table_name: str  # the row's name exactly as the published table writes it
    backend: str
    model_id: str
    id_status: str  # VERIFIED or INFERRED
    evidence: str
    dtype: str = "float32"
    answer: str | None = None
    max_new_tokens: int | None = None
    image_handling: str | None = None
    prompt_template: str | None = None
    processor_id: str | None = None  # when the processor comes from another repo than the weights
    processor_kwargs: dict = field(default_factory=dict)
    greedy: bool = True
    open_clip_pretrained: str | None = None  # open_clip's ``pretrained`` tag
    weights_repo: str | None = None  # a Hub repo holding a checkpoint file (hf_hub_download(repo, file)) ...
    weights_file: str | None = None  # ... which open_clip then takes as ``pretrained``
    open_clip_equivalent: str | None = None  # the open_clip run the paper made, when model_id is its port
    api_base: str | None = None
    api_key_env: str | None = None
    needs_remote_code: bool = False  # the row runs code from the model repo: refused without --trust-remote-code
    public_weights: bool = True
    notes: str = ""

    def command(self) -> str:
        """The command that runs this row."""
        prefix = f"{self.api_key_env}=... " if self.api_key_env else ""
        return f"{prefix}diffbench eval vismin --preset {self.name}"

    def protocol(self) -> dict:
        """The settings run.json records for this row: a chat row's ``answer`` mode, or a contrastive row's
        ``similarity`` (the same keys and texts the harness writes).

        >>> get_preset("blip").protocol()["similarity"]
        'BLIP ITC: cosine of the vision_proj / text_proj [CLS] embeddings'
        >>> "answer" in get_preset("clip-vit-b32").protocol()
        False
        """
        if not self.answer:
            return {"similarity": SIMILARITY_BLIP_ITC if self.backend == TRANSFORMERS_BLIP_ITC else SIMILARITY_COSINE,
                    "dtype": self.dtype}
        return {
            "answer": self.answer,
            "max_new_tokens": self.max_new_tokens,
            "image_handling": self.image_handling,
            "prompt_template": self.prompt_template,
            "processor_kwargs": dict(self.processor_kwargs),
            "dtype": self.dtype,
            "greedy": self.greedy,
        }


_LLAVA_PROMPT = "<image> [INST] {question} [/INST]"

_ROWS = (
    # ---- zero-shot table ------------------------------------------------------------------------------
    Preset(
        name="clip-vit-b32", table="zero-shot", table_name="CLIP (ViT-B/32)",
        backend=TRANSFORMERS_CONTRASTIVE, model_id="openai/clip-vit-base-patch32", id_status=VERIFIED,
        evidence=f"{_REPO} evals/vlm/model_factory.py ('ViT-B/32' -> open_clip) + evals/contrastive_inference.py "
                 "(--pretrained default 'openai'): OpenAI's weights, of which openai/clip-vit-base-patch32 is the "
                 "transformers release",
        open_clip_equivalent="ViT-B-32 pretrained=openai (QuickGELU)",
        notes="The paper ran open_clip; the same OpenAI weights run here in transformers (float32).",
    ),
    Preset(
        name="clip-vit-b16", table="zero-shot", table_name="CLIP (ViT-B/16)",
        backend=TRANSFORMERS_CONTRASTIVE, model_id="openai/clip-vit-base-patch16", id_status=VERIFIED,
        evidence=f"{_REPO} evals/vlm/model_factory.py ('ViT-B/16' -> open_clip, pretrained 'openai')",
        open_clip_equivalent="ViT-B-16 pretrained=openai (QuickGELU)",
        notes="As CLIP (ViT-B/32).",
    ),
    Preset(
        name="siglip-vit-b16", table="zero-shot", table_name="SigLip (ViT-B/16)",
        backend=TRANSFORMERS_CONTRASTIVE, model_id="google/siglip-base-patch16-256", id_status=VERIFIED,
        evidence=f"{_REPO} evals/vlm/model_factory.py, evals/vlm/siglip.py (AutoModel, padding='max_length')",
        notes="Text padded to max_length, as the official code and SigLIP's training do.",
    ),
    Preset(
        name="siglip-vit-l16", table="zero-shot", table_name="SigLip (ViT-L/16)",
        backend=TRANSFORMERS_CONTRASTIVE, model_id="google/siglip-large-patch16-384", id_status=VERIFIED,
        evidence=f"{_REPO} evals/vlm/model_factory.py",
        notes="As SigLip (ViT-B/16).",
    ),
    Preset(
        name="blip", table="zero-shot", table_name="BLIP",
        backend=TRANSFORMERS_BLIP_ITC, model_id="Salesforce/blip-itm-base-flickr", id_status=INFERRED,
        evidence=f"{_REPO} evals/vlm/blip.py passes 'blip-coco-base' as BLIPModelWrapper's root_dir, so "
                 "evals/vlm/model_zoo/blip_models.py keeps variant='blip-flickr-base' "
                 "(model_base_retrieval_flickr.pth); Salesforce/blip-itm-base-flickr is its transformers port",
        notes="Image-text contrastive (ITC) scores, not the ITM head: cosine of the normalised vision_proj/"
              "text_proj embeddings (blip.py predict/predict_itm). 384x384 bicubic squash, CLIP mean/std, text "
              "max_length 35. The name 'blip-coco-base' suggests the COCO retrieval model "
              "(Salesforce/blip-itm-base-coco); the code as published loads the Flickr one.",
    ),
    Preset(
        name="coca", table="zero-shot", table_name="Coca",
        backend=OPEN_CLIP, model_id="coca_ViT-L-14", open_clip_pretrained="laion2b_s13b_b90k", id_status=INFERRED,
        evidence=f"not named in {_REPO} (model_factory.py has no CoCa entry); open_clip's CoCa ViT-L/14 "
                 "LAION-2B (zero-shot, not the MSCOCO fine-tune) is inferred",
        notes="open_clip only (attentional pooler: not convertible to a transformers CLIPModel). Needs the "
              "[openclip] extra and torchvision.",
    ),
    Preset(
        name="llava-1.6-7b", table="zero-shot", table_name="LlaVa1.6 (7B)",
        backend=TRANSFORMERS_CHAT, model_id="llava-hf/llava-v1.6-mistral-7b-hf", id_status=VERIFIED,
        evidence=f"{_REPO} evals/vlm/model_factory.py, evals/vlm/llava.py",
        dtype="float16", answer="generate", max_new_tokens=64, image_handling="combined",
        prompt_template=_LLAVA_PROMPT,
        notes="Hand-written [INST] prompt (no chat template); the image questions get both images pasted into "
              "one (get_combined_image; its layout is not in the repository: side by side assumed).",
    ),
    Preset(
        name="idefics2", table="zero-shot", table_name="Idefics2",
        backend=TRANSFORMERS_CHAT, model_id="HuggingFaceM4/idefics2-8b", id_status=VERIFIED,
        evidence=f"{_REPO} evals/vlm/model_factory.py, evals/vlm/idefics2.py, evals/mllm_inference.py",
        dtype="float16", answer="generate", max_new_tokens=128, image_handling="separate",
        processor_kwargs={"do_image_splitting": False},
    ),
    Preset(
        name="internvl-1.5", table="zero-shot", table_name="InternVL1.5",
        backend=TRANSFORMERS_CHAT, model_id="OpenGVLab/InternVL-Chat-V1-5", id_status=VERIFIED,
        evidence=f"{_REPO} evals/vlm/model_factory.py, evals/vlm/internvl.py",
        dtype="bfloat16", answer="generate", max_new_tokens=512, image_handling="separate",
        needs_remote_code=True,
        notes="Needs --trust-remote-code. The paper called the remote code's model.chat with its own tiling "
              "(up to 6 448-px tiles + a thumbnail per image, both images' tiles concatenated, ImageNet "
              "mean/std); that path is not the image-text-to-text interface, so results may differ.",
    ),
    Preset(
        name="gemini-1.0-pro", table="zero-shot", table_name="Gemini1.0 Pro",
        backend=OPENAI_API, model_id="gemini-1.0-pro-vision", id_status=INFERRED,
        evidence=f"{_REPO} evals/vlm/model_factory.py names only 'gemini' (its vision_api.py is missing from the "
                 "repository); the model name is inferred from the table",
        answer="generate", image_handling="separate",
        api_base="https://generativelanguage.googleapis.com/v1beta/openai/", api_key_env="GEMINI_API_KEY",
        public_weights=False,
        notes="API model, no weights. Google has retired Gemini 1.0 Pro Vision: the row cannot be re-run as "
              "published; pass --api-model for a current Gemini (a different row).",
    ),
    Preset(
        name="gpt-4o", table="zero-shot", table_name="GPT4-o",
        backend=OPENAI_API, model_id="gpt-4o-2024-05-13", id_status=INFERRED,
        evidence=f"{_REPO} evals/vlm/model_factory.py names 'gpt-4-vision-preview' (vision_api.py missing); the "
                 "table says GPT4-o, whose snapshot in mid-2024 was gpt-4o-2024-05-13 (inferred)",
        answer="generate", image_handling="separate",
        api_base="https://api.openai.com/v1", api_key_env="OPENAI_API_KEY", public_weights=False,
        notes="API model, no weights; answers of a hosted model may change over time.",
    ),
    # ---- fine-tuned table -----------------------------------------------------------------------------
    Preset(
        name="clip-vit-l14", table="fine-tuned", table_name="CLIP",
        backend=TRANSFORMERS_CONTRASTIVE, model_id="openai/clip-vit-large-patch14", id_status=INFERRED,
        evidence="mair-lab/vismin-clip-vit-large model card (parent model openai/clip-vit-large-patch14) and the "
                 "project page ('All models utilize ViT-L-14'); that this row is the un-fine-tuned parent is "
                 f"inferred ({_REPO} model_factory.py runs it as open_clip 'ViT-L-14', pretrained 'openai')",
        open_clip_equivalent="ViT-L-14 pretrained=openai (QuickGELU)",
        notes="The baseline VisMin-CLIP starts from.",
    ),
    Preset(
        name="vismin-clip", table="fine-tuned", table_name="VisMin-CLIP",
        backend=OPEN_CLIP, model_id="ViT-L-14", weights_repo="mair-lab/vismin-clip-vit-large", weights_file="model.pt",
        id_status=VERIFIED,
        evidence="Hub model card mair-lab/vismin-clip-vit-large (collection mair-lab/vismin): model.pt, loaded "
                 "with open_clip.create_model_and_transforms('ViT-L-14', pretrained=<model.pt>)",
        notes="An open_clip checkpoint (5.1 GB). Without torchvision, convert it once: `diffbench convert "
              "open-clip ViT-L-14 --checkpoint model.pt --out vismin-clip-hf`, then run with --model "
              "vismin-clip-hf. The card's 'ViT-L-14' (no -quickgelu) makes open_clip use nn.GELU; the "
              "converter follows open_clip unless --quick-gelu is given.",
    ),
    Preset(
        name="idefics2-finetune-baseline", table="fine-tuned", table_name="Idefics2",
        backend=TRANSFORMERS_CHAT, model_id="HuggingFaceM4/idefics2-8b", id_status=VERIFIED,
        evidence=f"the fine-tuned table repeats the zero-shot Idefics2 row cell for cell; {_REPO} "
                 "evals/vlm/idefics2.py",
        dtype="float16", answer="generate", max_new_tokens=128, image_handling="separate",
        processor_kwargs={"do_image_splitting": False},
        notes="The same run as the zero-shot Idefics2 row (the baseline of Idefics2-VisMin).",
    ),
    Preset(
        name="idefics2-vismin", table="fine-tuned", table_name="Idefics2-VisMin",
        backend=TRANSFORMERS_CHAT, model_id="mair-lab/vismin-idefics2-8b", id_status=VERIFIED,
        evidence="Hub model card mair-lab/vismin-idefics2-8b (collection mair-lab/vismin); "
                 f"{_REPO} evals/vlm/idefics2.py loads the processor from HuggingFaceM4/idefics2-8b",
        dtype="float16", answer="generate", max_new_tokens=128, image_handling="separate",
        processor_id="HuggingFaceM4/idefics2-8b", processor_kwargs={"do_image_splitting": False},
        notes="QLoRA fine-tune; whether the repository holds merged weights or an adapter is not verified "
              "here (an adapter needs peft).",
    ),
)

#: preset name -> Preset, in the published order
PRESETS: dict[str, Preset] = {preset.name: preset for preset in _ROWS}


class UnknownPresetError(ValueError):
    """A preset name that names no row."""


def get_preset(name: str) -> Preset:
    """The preset called ``name``: a preset name, or a published row name that names one row."""
    if name in PRESETS:
        return PRESETS[name]
    by_table_name = [preset for preset in PRESETS.values() if preset.table_name == name]
    if len(by_table_name) == 1:
        return by_table_name[0]
    if by_table_name:
        choices = ", ".join(f"{p.name} ({p.table})" for p in by_table_name)
        raise UnknownPresetError(f"{name!r} names a row of both tables; say which: {choices}")
    raise UnknownPresetError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)}")


def published_scores(preset: Preset) -> dict[str, float]:
    """The published cells of ``preset``'s row: ``object_text`` ... ``counting_group`` and ``avg``."""
    table = published_results()
    row = table[(table["table"] == preset.table) & (table["model"] == preset.table_name)]
    if len(row) != 1:
        raise LookupError(f"{preset.table} table has {len(row)} rows named {preset.table_name!r}")
    record = row.iloc[0].to_dict()
    scores = {key: float(value) for key, value in record.items() if key not in ("table", "model")}
    scores["avg"] = scores.pop("avg_as_published")
    return scores


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table(presets=None) -> str:
    """The README table: one line per published row, with the preset, backend, model and command.

    >>> print(markdown_table([PRESETS["idefics2"]]).splitlines()[2])
    | zero-shot | Idefics2 | `idefics2` | transformers-chat | `HuggingFaceM4/idefics2-8b` (verified) | `diffbench eval vismin --preset idefics2` | generate, 128 new tokens, separate images (do_image_splitting=False), float16 |
    """
    presets = list(PRESETS.values()) if presets is None else list(presets)
    lines = [
        "| Table | Row | Preset | Backend | Model (id status) | Command | Protocol / notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in presets:
        model = f"`{p.model_id}`" + (f" + `{p.open_clip_pretrained}`" if p.open_clip_pretrained else "")
        if p.weights_repo:
            model += f" + `{p.weights_repo}/{p.weights_file}`"
        protocol = []
        if p.answer:
            protocol.append(p.answer + (f", {p.max_new_tokens} new tokens" if p.max_new_tokens else ""))
            if p.image_handling:
                kwargs = ", ".join(f"{k}={v}" for k, v in p.processor_kwargs.items())
                protocol.append(f"{p.image_handling} images" + (f" ({kwargs})" if kwargs else ""))
        else:
            protocol.append("similarity scores")
        protocol.append(p.dtype if p.backend != OPENAI_API else "API")
        if p.needs_remote_code:
            protocol.append("needs --trust-remote-code")
        if not p.public_weights:
            protocol.append("no public weights")
        lines.append(
            f"| {p.table} | {_escape(p.table_name)} | `{p.name}` | {p.backend} | {model} ({p.id_status}) "
            f"| `{p.command()}` | {_escape(', '.join(protocol))} |"
        )
    return "\n".join(lines)


# -- a preset as run options -----------------------------------------------------------------------------


def open_clip_spec(preset) -> str:
    """What ``open_clip.create_model_and_transforms`` takes for the row: ``NAME@TAG``, or ``NAME@FILE`` with
    the checkpoint file fetched from the Hub (``weights_repo`` / ``weights_file``)."""
    if preset.open_clip_pretrained:
        return f"{preset.model_id}@{preset.open_clip_pretrained}"
    if preset.weights_repo:
        from huggingface_hub import hf_hub_download

        try:
            path = hf_hub_download(preset.weights_repo, preset.weights_file)
        except Exception as err:  # noqa: BLE001 - offline, gated, missing: one line naming the file
            raise ValueError(f"preset {preset.name}: cannot fetch {preset.weights_repo}/{preset.weights_file} "
                             f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
        return f"{preset.model_id}@{path}"
    return preset.model_id


def preset_settings(name: str, task: str = "vismin", with_model: bool = True) -> dict:
    """RunOptions fields for preset ``name`` (an unknown name: a ValueError listing the valid ones).
    ``with_model=False`` leaves ``model`` out: a row's open_clip checkpoint is then not downloaded."""
    preset = get_preset(name)
    if task != "vismin":
        raise ValueError(f"presets are VisMin's published rows; task {task!r} takes --model")
    settings = {"model": preset.model_id if with_model else None, "dtype": preset.dtype}
    if preset.backend == OPENAI_API:
        settings.update(api_base=preset.api_base, api_key_env=preset.api_key_env)
    elif preset.backend == OPEN_CLIP and with_model:
        settings["model"] = OPEN_CLIP_PREFIX + open_clip_spec(preset)
    if preset.answer:
        settings.update(answer=preset.answer, max_new_tokens=preset.max_new_tokens,
                        image_handling=preset.image_handling, prompt_template=preset.prompt_template)
        kwargs = dict(preset.processor_kwargs)
        if "do_image_splitting" in kwargs:
            settings["image_splitting"] = bool(kwargs.pop("do_image_splitting"))
        if preset.processor_id:
            settings["processor"] = preset.processor_id
        if kwargs:
            raise ValueError(f"preset {preset.name}: processor settings {sorted(kwargs)} are not supported")
    if preset.needs_remote_code:
        settings["needs_remote_code"] = True
    return {k: v for k, v in settings.items() if v is not None}


#: the options a preset may set (each only where the options leave it unset, ``None``)
PRESET_FIELDS = ("model", "revision", "processor", "dtype", "answer", "max_new_tokens", "image_handling",
                 "image_splitting", "prompt_template", "api_base", "api_key_env")


def apply_preset(options: RunOptions) -> RunOptions:
    """A copy of ``options`` with its unset fields filled from its preset's settings (given values win), those
    it filled named in ``from_preset``; a row that runs the model repository's code is refused unless
    ``trust_remote_code``. Options without a preset come back as they are.

    >>> options = apply_preset(RunOptions(preset="llava-1.6-7b", max_new_tokens=8, out="runs/x"))
    >>> options.model, options.image_handling, options.max_new_tokens, options.dtype
    ('llava-hf/llava-v1.6-mistral-7b-hf', 'combined', 8, 'float16')
    >>> "dtype" in options.from_preset, "max_new_tokens" in options.from_preset  # run.json says where each came from
    (True, False)
    """
    if not options.preset:
        return options
    # a model the user gave wins: the row's own (an open_clip checkpoint: a download) is not fetched
    settings = preset_settings(options.preset, options.task, with_model=options.model is None)
    if settings.pop("needs_remote_code", False) and not options.trust_remote_code:
        raise ValueError(f"preset {options.preset} runs code from the model's repository; pass --trust-remote-code "
                         "(trust_remote_code=True) if you trust it")
    unset = {name: settings[name] for name in PRESET_FIELDS
             if getattr(options, name) is None and settings.get(name) is not None}
    return dataclasses.replace(options, **unset, from_preset=tuple(unset))
