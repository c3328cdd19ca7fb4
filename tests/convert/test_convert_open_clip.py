"""open_clip -> transformers CLIPModel conversion.

open_clip cannot import on these CPU machines (it needs torchvision), so the checks here use a small
reference written from open_clip 3.3's own source (``open_clip/model.py`` ``CLIP.encode_image/encode_text``,
``open_clip/transformer.py`` ``VisionTransformer``, ``ResidualAttentionBlock``, ``text_global_pool``): same
module names (so its ``state_dict()`` is open_clip's key layout), same math (``nn.MultiheadAttention`` with
the packed ``in_proj``, class token, pre/post LayerNorm, causal mask, argmax pooling, projections,
``logit_scale.exp() * cos``). Every parameter is random, LayerNorm and biases included, and the towers have
different widths, so a transposed or swapped tensor shows. The parity test against open_clip itself runs
where open_clip imports (the GPU machine) and is skipped elsewhere, saying why.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from conftest import require_module
from diffbench.backends import open_clip_model
from diffbench.cli import main
from diffbench.convert import open_clip as oc
from diffbench.convert.open_clip import UnsupportedOpenClipModel, convert_open_clip
from diffbench.models.tiny import build_word_tokenizer

VOCAB = 40
EOT = VOCAB - 1  # open_clip pools at the highest token id (OpenAI's <|endoftext|> is the last id)


def tiny_model_cfg(quick_gelu=False, **vision):
    return {
        "embed_dim": 16, "quick_gelu": quick_gelu,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8, **vision},
        "text_cfg": {"context_length": 12, "vocab_size": VOCAB, "width": 24, "heads": 4, "layers": 2},
    }


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Block(nn.Module):
    """open_clip ResidualAttentionBlock (no layer scale, batch first)."""

    def __init__(self, width, heads, act):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(width, width * 4)), ("gelu", act()),
                                              ("c_proj", nn.Linear(width * 4, width))]))

    def forward(self, x, attn_mask=None):
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False, attn_mask=attn_mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width, layers, heads, act):
        super().__init__()
        self.resblocks = nn.ModuleList([Block(width, heads, act) for _ in range(layers)])

    def forward(self, x, attn_mask=None):
        for block in self.resblocks:
            x = block(x, attn_mask=attn_mask)
        return x


class Visual(nn.Module):
    """open_clip VisionTransformer with pool_type 'tok'."""

    def __init__(self, cfg, embed_dim, act):
        super().__init__()
        width, patch, size = cfg["width"], cfg["patch_size"], cfg["image_size"]
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch, stride=patch, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(width))
        self.positional_embedding = nn.Parameter(torch.randn((size // patch) ** 2 + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, cfg["layers"], width // cfg["head_width"], act)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.randn(width, embed_dim))

    def forward(self, pixels):
        x = self.conv1(pixels).flatten(2).permute(0, 2, 1)
        x = torch.cat([self.class_embedding.expand(x.shape[0], 1, -1), x], dim=1) + self.positional_embedding
        x = self.ln_post(self.transformer(self.ln_pre(x)))
        return x[:, 0] @ self.proj


class ReferenceCLIP(nn.Module):
    """open_clip CLIP: the text tower's parts at the top level, as in open_clip's ``CLIP``."""

    def __init__(self, cfg):
        super().__init__()
        act = QuickGELU if cfg["quick_gelu"] else nn.GELU
        text = cfg["text_cfg"]
        self.visual = Visual(cfg["vision_cfg"], cfg["embed_dim"], act)
        self.transformer = Transformer(text["width"], text["layers"], text["heads"], act)
        self.token_embedding = nn.Embedding(text["vocab_size"], text["width"])
        self.positional_embedding = nn.Parameter(torch.randn(text["context_length"], text["width"]))
        self.ln_final = nn.LayerNorm(text["width"])
        self.text_projection = nn.Parameter(torch.randn(text["width"], cfg["embed_dim"]))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        mask = torch.full((text["context_length"],) * 2, float("-inf")).triu_(1)
        self.register_buffer("attn_mask", mask, persistent=False)
        with torch.no_grad():
            for name, param in self.named_parameters():
                if name != "logit_scale":
                    param.copy_(torch.randn_like(param) * (0.3 if param.ndim > 1 else 0.5) + (1.0 if name.endswith("ln_1.weight") else 0.0))

    def encode_image(self, pixels):
        return nn.functional.normalize(self.visual(pixels), dim=-1)

    def encode_text(self, ids):
        x = self.token_embedding(ids) + self.positional_embedding
        x = self.ln_final(self.transformer(x, attn_mask=self.attn_mask))
        x = x[torch.arange(x.shape[0]), ids.argmax(dim=-1)] @ self.text_projection
        return nn.functional.normalize(x, dim=-1)

    def logits(self, pixels, ids):
        return self.logit_scale.exp() * self.encode_image(pixels) @ self.encode_text(ids).T


def gradient_image(width, height) -> Image.Image:
    """A smooth test image (noise would turn any resampling detail into large pixel differences)."""
    yy, xx = np.mgrid[0:height, 0:width]
    return Image.fromarray(np.stack([xx * 3 % 256, yy * 5 % 256, (xx + yy) * 2 % 256], -1).astype(np.uint8))


def token_ids():
    """Three texts of different lengths, each ending in EOT, zero-padded to the context length (open_clip's way)."""
    ids = torch.zeros(3, 12, dtype=torch.long)
    for row, length in enumerate((3, 7, 11)):
        ids[row, :length] = torch.randint(1, EOT, (length,))
        ids[row, length] = EOT
    return ids


@pytest.fixture
def tokenizer_dir(tmp_path):
    path = tmp_path / "tokenizer"
    build_word_tokenizer(["a", "red", "box", "blue"]).save_pretrained(path)
    return path


def write_local_dir(folder, model, cfg, preprocess_cfg=None):
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": preprocess_cfg or {}}))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    return folder


@pytest.mark.parametrize("quick_gelu", [False, True])
def test_converted_model_computes_what_open_clip_computes(tmp_path, tokenizer_dir, quick_gelu):
    from transformers import AutoModel

    torch.manual_seed(1)
    cfg = tiny_model_cfg(quick_gelu=quick_gelu)
    reference = ReferenceCLIP(cfg).eval()
    out = convert_open_clip(f"local-dir:{write_local_dir(tmp_path / 'src', reference, cfg)}", tmp_path / "hf",
                            tokenizer=str(tokenizer_dir))
    model, info = AutoModel.from_pretrained(out, output_loading_info=True)
    assert type(model).__name__ == "CLIPModel"
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert model.config.vision_config.hidden_act == ("quick_gelu" if quick_gelu else "gelu")
    pixels, ids = torch.randn(2, 3, 32, 32), token_ids()
    with torch.no_grad():
        expected = reference.logits(pixels, ids)
        got = model(pixel_values=pixels, input_ids=ids).logits_per_image
        padded = model(pixel_values=pixels, input_ids=ids, attention_mask=(ids != 0) | (torch.arange(12) == 0)).logits_per_image
    assert expected.abs().max() > 1  # not a degenerate comparison
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(padded, expected, atol=1e-5, rtol=0)  # a padding mask changes nothing before EOT


def test_training_checkpoint_and_custom_text_layouts_convert_the_same(tmp_path, tokenizer_dir):
    from safetensors.torch import load_file

    torch.manual_seed(2)
    cfg = tiny_model_cfg()
    state = ReferenceCLIP(cfg).state_dict()
    # a training checkpoint: {"state_dict": ...} with DDP's "module." prefix, as open_clip's trainer saves
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "epoch_3.pt")
    # CustomTextCLIP keeps the text tower under "text."
    custom = {(f"text.{k}" if k.startswith(oc._TEXT_PREFIXES) else k): v for k, v in state.items()}
    torch.save(custom, tmp_path / "custom.pt")
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    a = convert_open_clip(str(tmp_path / "epoch_3.pt"), tmp_path / "a", model_config=tmp_path / "cfg.json",
                          tokenizer=str(tokenizer_dir))
    b = convert_open_clip("ViT-Tiny", tmp_path / "b", checkpoint=tmp_path / "custom.pt",
                          model_config=tmp_path / "cfg.json", tokenizer=str(tokenizer_dir))
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert all(t.dtype == torch.float32 for t in wa.values())


def test_folder_keeps_preprocessing_and_tokenizer_and_loads_with_auto_classes(tmp_path, tokenizer_dir):
    from transformers import AutoProcessor

    torch.manual_seed(3)
    cfg = tiny_model_cfg()
    preprocess = {"size": 32, "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3], "interpolation": "bilinear",
                  "resize_mode": "shortest"}
    out = convert_open_clip(f"local-dir:{write_local_dir(tmp_path / 'src', ReferenceCLIP(cfg), cfg, preprocess)}",
                            tmp_path / "hf", tokenizer=str(tokenizer_dir))
    processor = AutoProcessor.from_pretrained(out)
    images = processor.image_processor
    assert images.size == {"shortest_edge": 32} and images.do_center_crop
    assert images.crop_size == {"height": 32, "width": 32}
    assert list(images.image_mean) == [0.5, 0.4, 0.3] and list(images.image_std) == [0.2, 0.25, 0.3]
    assert int(images.resample) == 2  # bilinear
    assert processor.tokenizer.model_max_length == 12
    record = json.loads((out / oc.CONVERSION_RECORD).read_text())
    assert record["preprocess_cfg"] == preprocess and record["converted_from"].startswith("local-dir:")

    # open_clip's eval transform, written out with PIL: shortest edge -> 32 (long edge truncated: 60x40 ->
    # 48x32), centre crop, to [0, 1], normalise. The margin (16) is even: with an odd margin torchvision's
    # CenterCrop rounds the offset half-to-even while transformers' PIL backend floors it (one pixel apart).
    image = gradient_image(60, 40)
    resized = np.asarray(image.resize((48, 32), Image.Resampling.BILINEAR), dtype=np.float32)
    expected = (resized[:, 8:40] / 255 - np.array([0.5, 0.4, 0.3])) / np.array([0.2, 0.25, 0.3])
    got = processor(images=image, return_tensors="pt")["pixel_values"][0].permute(1, 2, 0)
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float32), atol=1e-4, rtol=0)


def test_squash_resize_mode_has_no_crop():
    processor = oc.image_processor({"size": 48, "resize_mode": "squash"}, tiny_model_cfg())
    assert processor.size == {"height": 48, "width": 48} and not processor.do_center_crop
    assert list(processor.image_mean) == list(oc.OPENAI_MEAN) and int(processor.resample) == 3  # bicubic default
    with pytest.raises(UnsupportedOpenClipModel, match="resize_mode='longest'"):
        oc.image_processor({"resize_mode": "longest"}, tiny_model_cfg())


def test_the_cli_converts_and_refuses_a_non_empty_out_folder(tmp_path, tokenizer_dir, capsys):
    torch.manual_seed(4)
    cfg = tiny_model_cfg()
    src = write_local_dir(tmp_path / "src", ReferenceCLIP(cfg), cfg)
    args = ["convert", "open-clip", f"local-dir:{src}", "--out", str(tmp_path / "hf"), "--tokenizer", str(tokenizer_dir)]
    assert main(args) == 0
    assert "diffbench eval vismin --model" in capsys.readouterr().out
    before = sorted(p.name for p in (tmp_path / "hf").iterdir())
    assert main(args) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "hf").iterdir()) == before
    assert main(args + ["--overwrite", "--quick-gelu"]) == 0
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["vision_config"]["hidden_act"] == "quick_gelu"


def test_overwrite_replaces_only_a_converted_folder_and_a_file_out_is_one_line(tmp_path, tokenizer_dir, capsys):
    """--overwrite replaces a folder the converter wrote (it holds diffbench_conversion.json), never another
    non-empty folder; --out naming a file is a one-line error (no NotADirectoryError)."""
    torch.manual_seed(4)
    cfg = tiny_model_cfg()
    src = write_local_dir(tmp_path / "src", ReferenceCLIP(cfg), cfg)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    args = ["convert", "open-clip", f"local-dir:{src}", "--tokenizer", str(tokenizer_dir), "--overwrite"]
    capsys.readouterr()
    assert main(args + ["--out", str(mine)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a folder written by diffbench convert (no diffbench_conversion.json)" in err[0]
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"] and (mine / "thesis.tex").read_text() == "years of work"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".mine.")]  # no staging folder left
    a_file = tmp_path / "model.safetensors"
    a_file.write_bytes(b"not a folder")
    assert main(args + ["--out", str(a_file)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file, not a folder" in err[0] and a_file.read_bytes() == b"not a folder"
    converted = tmp_path / "converted"
    assert main(args + ["--out", str(converted)]) == 0  # new: written
    assert main(args + ["--out", str(converted), "--quick-gelu"]) == 0  # ours: replaced
    assert json.loads((converted / "config.json").read_text())["vision_config"]["hidden_act"] == "quick_gelu"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".converted.")]  # nor the old folder


def test_bad_checkpoints_say_what_is_wrong_and_write_nothing(tmp_path, tokenizer_dir):
    torch.manual_seed(5)
    cfg = tiny_model_cfg()
    state = ReferenceCLIP(cfg).state_dict()
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))

    def attempt(weights, **kwargs):
        torch.save(weights, tmp_path / "w.pt")
        return convert_open_clip(str(tmp_path / "w.pt"), tmp_path / "out", model_config=kwargs.pop("config", tmp_path / "cfg.json"),
                                 tokenizer=str(tokenizer_dir), **kwargs)

    missing = {k: v for k, v in state.items() if k != "visual.ln_post.bias"}
    with pytest.raises(ValueError, match=r"w\.pt: missing visual\.ln_post\.bias"):
        attempt(missing)
    coca_like = {**state, "text_decoder.resblocks.0.ln_1.weight": torch.ones(24)}
    with pytest.raises(UnsupportedOpenClipModel, match="text_decoder.resblocks.0.ln_1.weight"):
        attempt(coca_like)
    wrong_shape = {**state, "visual.proj": torch.zeros(32, 8)}
    with pytest.raises(ValueError, match=r"visual_projection\.weight has shape \(8, 32\).*\(16, 32\)"):
        attempt(wrong_shape)
    with pytest.raises(UnsupportedOpenClipModel, match="logit_bias"):
        attempt({**state, "logit_bias": torch.tensor(-10.0)})
    pooled = tmp_path / "pooled.json"
    pooled.write_text(json.dumps(tiny_model_cfg(attentional_pool=True)))
    with pytest.raises(UnsupportedOpenClipModel, match="vision_cfg.attentional_pool=True"):
        attempt(state, config=pooled)
    (tmp_path / "broken.json").write_text('{"model_cfg": ')
    with pytest.raises(ValueError, match=r"broken\.json: not valid JSON \(line 1"):
        attempt(state, config=tmp_path / "broken.json")
    with pytest.raises(ValueError, match="needs --checkpoint"):
        convert_open_clip("ViT-L-14", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # no staging folder left behind


def test_parity_with_open_clip_itself(tmp_path, tokenizer_dir):
    """Converted vs open_clip's own model on the same inputs: logits within 1e-4."""
    open_clip = require_module("open_clip", "open_clip comes with the [openclip] extra (in [dev]); it needs "
                                            "torchvision, which make test installs (torch 2.14.1, torchvision 0.29.1)")
    from transformers import AutoModel, AutoProcessor

    torch.manual_seed(6)
    cfg = tiny_model_cfg(quick_gelu=True)
    src = write_local_dir(tmp_path / "src", ReferenceCLIP(cfg), cfg, {"size": 32})
    theirs, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{src}")
    out = convert_open_clip(f"local-dir:{src}", tmp_path / "hf", tokenizer=str(tokenizer_dir))
    ours, processor = AutoModel.from_pretrained(out).eval(), AutoProcessor.from_pretrained(out)
    theirs.eval()
    image = gradient_image(60, 40)  # an even crop margin (see the preprocessing test)
    pixels = preprocess(image).unsqueeze(0)
    torch.testing.assert_close(processor(images=image, return_tensors="pt")["pixel_values"], pixels, atol=1e-4, rtol=0)
    ids = token_ids()
    with torch.no_grad():
        expected, _ = theirs.get_logits(pixels, ids)
        got = ours(pixel_values=pixels, input_ids=ids).logits_per_image
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


# -- running open_clip in place (the optional backend) ----------------------------------------------------

def test_open_clip_specs_and_the_message_where_it_cannot_import():
    assert open_clip_model.parse_spec("local-dir:/x") == ("local-dir:/x", None)
    assert open_clip_model.parse_spec("ViT-B-32@openai") == ("ViT-B-32", "openai")
    with pytest.raises(ValueError, match="nothing after '@'"):
        open_clip_model.parse_spec("ViT-B-32@")
    try:
        import open_clip  # noqa: F401
    except Exception:
        with pytest.raises(ImportError, match=r"\[openclip\] extra.*diffbench convert open-clip"):
            open_clip_model.import_open_clip()
    else:
        assert open_clip_model.import_open_clip() is open_clip


def test_open_clip_backend_features_match_the_converted_model(tmp_path, tokenizer_dir):
    require_module("open_clip", "open_clip comes with the [openclip] extra (in [dev]); it needs torchvision, which "
                                "make test installs (torch 2.14.1, torchvision 0.29.1)")
    from transformers import AutoModel

    torch.manual_seed(7)
    cfg = tiny_model_cfg(quick_gelu=True)
    src = write_local_dir(tmp_path / "src", ReferenceCLIP(cfg), cfg, {"size": 32})
    backend = open_clip_model.OpenClipContrastive.from_spec(f"local-dir:{src}")
    converted = AutoModel.from_pretrained(convert_open_clip(f"local-dir:{src}", tmp_path / "hf", tokenizer=str(tokenizer_dir)))
    pixels, ids = backend.preprocess([gradient_image(60, 40)]), token_ids()
    def features(output):  # transformers 5 may return an output object (the features are its pooler_output)
        return nn.functional.normalize(getattr(output, "pooler_output", output), dim=-1)

    with torch.no_grad():
        torch.testing.assert_close(backend.get_image_features(pixels),
                                   features(converted.get_image_features(pixel_values=pixels)), atol=1e-4, rtol=0)
        torch.testing.assert_close(backend.get_text_features(ids),
                                   features(converted.get_text_features(input_ids=ids)), atol=1e-4, rtol=0)


def test_an_unreachable_hub_source_is_one_clear_error(tmp_path):
    """Tests run offline (HF_HUB_OFFLINE=1): the real Hub code path answers with what it could not fetch."""
    with pytest.raises(FileNotFoundError, match=r"hf-hub:nobody/no-such-clip: cannot fetch open_clip_config\.json"):
        convert_open_clip("hf-hub:nobody/no-such-clip", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("model_cfg, expected", [
    # open_clip 3.3 model_configs/ViT-B-32.json and ViT-L-14.json, and the shapes of the transformers ports
    # of the same OpenAI weights (openai/clip-vit-base-patch32, openai/clip-vit-large-patch14).
    ({"embed_dim": 512, "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 32},
      "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12}},
     ((768, 3072, 12, 12, 32, 224), (512, 2048, 8, 12, 77, 49408), 512)),
    ({"embed_dim": 768, "vision_cfg": {"image_size": 224, "layers": 24, "width": 1024, "patch_size": 14},
      "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 768, "heads": 12, "layers": 12}},
     ((1024, 4096, 16, 24, 14, 224), (768, 3072, 12, 12, 77, 49408), 768)),
])
def test_open_clip_builtin_configs_give_the_openai_clip_shapes(model_cfg, expected):
    config = oc.clip_config(model_cfg, quick_gelu=True)
    v, t = config.vision_config, config.text_config
    assert (v.hidden_size, v.intermediate_size, v.num_attention_heads, v.num_hidden_layers, v.patch_size,
            v.image_size) == expected[0]
    assert (t.hidden_size, t.intermediate_size, t.num_attention_heads, t.num_hidden_layers,
            t.max_position_embeddings, t.vocab_size) == expected[1]
    assert config.projection_dim == expected[2] and t.eos_token_id == 2  # argmax pooling, as OpenAI's configs
    assert oc.clip_config(model_cfg).vision_config.hidden_act == "gelu"  # open_clip's default without -quickgelu
