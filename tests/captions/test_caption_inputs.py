"""Hostile input to the caption scorers: a result or a one-line ValueError, never a traceback, never a changed value.

Property-based (hypothesis) over the predictions reader (arbitrary JSON and bytes) and the metric's
inputs (arbitrary text, numbers and shapes), plus the cases issue 14 lists: a repeated id, a lone
surrogate, a null caption, a 300,000-word caption, a file far larger than the dataset could need.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diffbench.captions.inputs import (MAX_CAPTION_CHARS, max_predictions_bytes, normalize_metrics, read_predictions,
                                      validate_inputs)
from diffbench.captions.metrics import score_captions
from diffbench.captions.tokenizer import tokenize_corpus

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
# text with what breaks pipelines: line breaks of every kind, METEOR's separator, lone surrogates
nasty = st.sampled_from(["\n", "\r", "\u2028", "\u0085", "\x1c", "|||", "\ud800", "\udfff", "\x00", "  ", "\t", "é", "日本"])
captions = st.lists(st.text(max_size=6) | nasty, max_size=6).map("".join)


def one_line(err: BaseException) -> bool:
    return "\n" not in str(err) and str(err) != ""


def expected_predictions(data):
    """What a reader that changes nothing returns for ``data``, or None when ``data`` must be refused."""
    if isinstance(data, dict):
        pairs = list(data.items())
    elif isinstance(data, list):
        pairs = []
        for row in data:
            if not isinstance(row, dict):
                return None
            ids = [k for k in ("id", "image_id") if k in row]
            caps = [k for k in ("caption", "prediction") if k in row]
            if len(ids) != 1 or len(caps) != 1:
                return None
            key = row[ids[0]]
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                return None
            pairs.append((str(key), row[caps[0]]))
    else:
        return None
    out = {}
    for key, caption in pairs:
        if key in out or not isinstance(caption, str) or len(caption) > MAX_CAPTION_CHARS:
            return None
        try:
            caption.encode("utf-8")
        except UnicodeEncodeError:
            return None
        out[key] = caption
    return out


@SETTINGS
@given(data=json_values | st.dictionaries(st.text(max_size=8), captions, max_size=5)
       | st.lists(st.fixed_dictionaries({"id": st.integers() | st.text(max_size=5) | st.floats() | st.none(),
                                         "caption": captions | st.none() | st.integers()}), max_size=5))
def test_reader_returns_the_file_unchanged_or_one_line(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("p") / "predictions.json"
    path.write_text(json.dumps(data), encoding="utf-8", errors="surrogatepass")
    # what the file holds: json.dumps writes a lone surrogate as \udXXX, and two of them in a row load back
    # as one (valid) character
    expected = expected_predictions(json.loads(json.dumps(data)))
    try:
        got = read_predictions(path)
    except ValueError as err:
        assert one_line(err) and str(path) in str(err)
        assert expected is None, f"refused valid input: {err}"
        return
    assert got == expected


@SETTINGS
@given(raw=st.binary(max_size=200))
def test_reader_on_arbitrary_bytes(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("p") / "predictions.json"
    path.write_bytes(raw)
    try:
        got = read_predictions(path)
    except ValueError as err:
        assert one_line(err) and str(path) in str(err)
        return
    assert isinstance(got, dict) and all(isinstance(v, str) for v in got.values())


@pytest.mark.parametrize("text, message", [
    ('{"p0": "a", "p1": "b", "p0": "c"}', "'p0' appears twice"),
    ('[{"id": "p0", "caption": "a"}, {"id": "p0", "caption": "b"}]', "id 'p0' appears twice \\(entries 0 and 1\\)"),
    ('[{"image_id": 7, "caption": "a"}, {"id": "7", "caption": "b"}]', "id '7' appears twice"),
    ('{"p0": "a", "p1": "\\ud800 car"}', "id 'p1': the caption holds a lone surrogate \\(U\\+D800\\) at character 0"),
    ('{"p0": null}', "id 'p0': the caption must be a string, got null"),
    ('[{"id": 1.0, "caption": "a"}]', "entry 0: the id must be a string or an integer, got float"),
    ('[{"id": null, "caption": "a"}]', "entry 0: the id must be a string or an integer, got null"),
    ('[{"id": "p0", "caption": null}]', "entry 0 \\(id 'p0'\\): the caption must be a string, got null"),
    ("[" * 100_000, "nested too deeply|not valid JSON"),
    ('"just a string"', "expected an object"),
])
def test_reader_errors_name_the_id(tmp_path, text, message):
    path = tmp_path / "predictions.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as caught:
        read_predictions(path)
    assert one_line(caught.value) and str(path) in str(caught.value)


def test_reader_refuses_a_file_far_larger_than_the_dataset_before_reading(tmp_path):
    path = tmp_path / "huge.json"
    with path.open("wb") as out:  # sparse: 200 MB on paper, nothing read
        out.seek(200 * 1024 * 1024)
        out.write(b"}")
    with pytest.raises(ValueError, match="more than the .* this dataset could need: not read"):
        read_predictions(path, max_bytes=max_predictions_bytes(1270))
    assert max_predictions_bytes(1270) < 50 * 1024 * 1024
    with pytest.raises(FileNotFoundError, match="no predictions file"):
        read_predictions(tmp_path / "absent.json")


def test_caption_length_is_capped_before_any_jvm():
    long_caption = "word " * 300_000
    with pytest.raises(ValueError, match="sample 1 \\(id 'b'\\): the prediction has 1,500,000 characters; the limit is") as caught:
        score_captions(["ok", long_caption], [["ok"], ["ok"]], sample_ids=["a", "b"])
    assert one_line(caught.value)
    with pytest.raises(ValueError, match="sample 0: reference 1 has"):
        score_captions(["ok"], [["ok", long_caption]])


shapes = st.recursive(json_scalars | nasty, lambda inner: st.lists(inner, max_size=3), max_leaves=10)


@SETTINGS
@given(predictions=shapes | st.lists(captions | json_scalars, max_size=4),
       references=shapes | st.lists(st.lists(captions | json_scalars, max_size=3) | json_scalars, max_size=4),
       groups=st.none() | shapes, metrics=st.none() | shapes)
def test_metric_input_checks_on_arbitrary_shapes(predictions, references, groups, metrics):
    try:
        normalize_metrics(metrics)
        checked = validate_inputs(predictions, references, groups)
    except ValueError as err:
        assert one_line(err)
        return
    preds, refs, _ = checked
    assert preds == list(predictions) and refs == [list(r) for r in references]  # nothing changed


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(data=st.lists(st.tuples(captions, st.lists(captions, min_size=1, max_size=3)), min_size=1, max_size=4))
def test_pipeline_on_arbitrary_text_equals_pycocoevalcap_or_refuses(data):
    """Through the real JVMs: a one-line ValueError (surrogates), else pycocoevalcap's numbers on our tokens."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    predictions, references = [p for p, _ in data], [r for _, r in data]
    try:
        ours = score_captions(predictions, references, metrics=["bleu", "meteor", "rouge", "cider"])
    except ValueError as err:
        assert one_line(err) and "lone surrogate" in str(err)
        return
    hyps, refs = tokenize_corpus(predictions, references)
    gts, res = {i: list(r) for i, r in enumerate(refs)}, {i: [h] for i, h in enumerate(hyps)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    assert [ours[f"Bleu_{k}"] for k in range(1, 5)] == pytest.approx(bleu, abs=1e-12)
    assert ours["ROUGE_L"] == pytest.approx(Rouge().compute_score(gts, res)[0], abs=1e-12)
    if any(r.split() for rs in refs for r in rs):
        assert ours["CIDEr"] == pytest.approx(Cider().compute_score(gts, res)[0], abs=1e-9)
    else:  # pycocoevalcap's CIDEr fails (max() of no document frequency): every vector is 0 here
        assert ours["CIDEr"] == 0.0
    assert 0.0 <= ours["METEOR"] <= 1.0 and ours["num_samples"] == len(data)


# -- issue 23: an integer too long for Python (json.loads fails on it, naming neither file nor entry) --------

DIGITS = "7" * 5000


@pytest.mark.parametrize("text, message", [
    (f'[{{"id": "p0", "caption": "a"}}, {{"id": {DIGITS}, "caption": "b"}}]',
     "entry 1: the id must be a string or an integer, got an integer of 5,000 digits \\(field 'id'\\)"),
    (f'[{{"image_id": -{DIGITS}, "caption": "b"}}]',
     "entry 0: the id must be a string or an integer, got an integer of 5,000 digits \\(field 'image_id'\\)"),
    (f'{{"p0": {DIGITS}}}', "id 'p0': the caption must be a string, got an integer of 5,000 digits"),
    (f'[{{"id": "p0", "prediction": {DIGITS}}}]',
     "entry 0 \\(id 'p0'\\): the caption must be a string, got an integer of 5,000 digits"),
], ids=["id", "negative-image_id", "caption-of-an-object", "caption-of-an-entry"])
def test_a_5000_digit_integer_names_file_entry_and_field(tmp_path, text, message):
    path = tmp_path / "predictions.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as caught:
        read_predictions(path)
    assert one_line(caught.value) and str(caught.value).startswith(f"{path}: ") and len(str(caught.value)) < 500


def test_integers_python_reads_are_read_as_before(tmp_path):
    path = tmp_path / "predictions.json"
    path.write_text(f'[{{"id": {"7" * 4000}, "caption": "a"}}, {{"id": 12, "caption": "b"}}]', encoding="utf-8")
    assert read_predictions(path) == {"7" * 4000: "a", "12": "b"}
