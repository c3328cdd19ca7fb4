"""BLIP's ITC scores (the paper's BLIP row) from a tiny BlipForImageTextRetrieval built from a config."""

from __future__ import annotations

import pytest
import torch

from diffbench.backends.blip_itc import BlipITC


@pytest.fixture(scope="module")
def tiny_blip_retrieval(tmp_path_factory):
    from transformers import BlipConfig, BlipForImageTextRetrieval

    config = BlipConfig(
        text_config=dict(vocab_size=60, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, encoder_hidden_size=48, max_position_embeddings=40),
        vision_config=dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8),
        image_text_hidden_size=24,
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("blip") / "tiny-blip-itm"
    BlipForImageTextRetrieval(config).eval().save_pretrained(path)
    return path


def test_itc_features_give_the_retrieval_models_own_itc_scores(tiny_blip_retrieval):
    from transformers import BlipForImageTextRetrieval

    itc = BlipITC.from_pretrained(tiny_blip_retrieval).eval()
    reference = BlipForImageTextRetrieval.from_pretrained(tiny_blip_retrieval).eval()
    pixels = torch.randn(2, 3, 32, 32)
    ids = torch.tensor([[1, 5, 9, 13, 2, 0], [1, 7, 8, 2, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        images, texts = itc.get_image_features(pixels), itc.get_text_features(ids, attention_mask=mask)
        expected = torch.stack([reference(input_ids=ids, attention_mask=mask, pixel_values=pixels[i:i + 1],
                                          use_itm_head=False).itm_score[0] for i in range(2)])
    assert images.shape == (2, 24) and texts.shape == (2, 24)
    torch.testing.assert_close(images.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(images @ texts.T, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(itc(pixels, ids, mask), expected, atol=1e-6, rtol=0)


def test_automodel_would_not_load_the_retrieval_heads(tiny_blip_retrieval):
    """Why the backend exists: AutoModel gives BlipModel, whose projections are not in the checkpoint."""
    from transformers import AutoModel

    model, info = AutoModel.from_pretrained(tiny_blip_retrieval, output_loading_info=True)
    assert type(model).__name__ == "BlipModel"
    assert any("visual_projection" in key for key in info["missing_keys"])
