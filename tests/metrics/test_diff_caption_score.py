"""diff_caption_score: parity with pycocoevalcap 1.2 on real corpora, breakdowns, bad input, the JVM.

pycocoevalcap runs beside ours in this process: one reference Meteor JVM and one of ours for the whole
session (each JVM start costs seconds). Subsets of a few hundred real pairs; the full 9,524-pair corpus
is the benchmark's (bench/bench_diff_caption_score.py).
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import json
import pkgutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import diffbench.captions
from diffbench.captions import metrics, stats
from diffbench.captions.java import JavaNotFoundError
from diffbench.captions.meteor import MeteorError, MeteorServer, aggregate_stats, get_meteor, parse_stats
from diffbench.captions.metrics import score_captions
from diffbench.captions.spice import SpiceUnavailableError
from diffbench.captions.tokenizer import PTBTokenizer

REPO = Path(__file__).resolve().parents[2]
METRIC_DIR = REPO / "metrics" / "diff_caption_score"
NAMES = ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"]
TOL = 1e-9


# -- the reference pipeline ------------------------------------------------------------------------
def coco_tokenize(predictions, references):
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer as CocoPTB

    tokenizer = CocoPTB()
    gts = tokenizer.tokenize({i: [{"caption": r} for r in refs] for i, refs in enumerate(references)})
    res = tokenizer.tokenize({i: [{"caption": p}] for i, p in enumerate(predictions)})
    return gts, res


def coco_scores(gts, res, meteor) -> dict:
    """COCOEvalCap.evaluate()'s scorers on tokenised dicts (SPICE left out)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    out = {}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    out.update(zip(NAMES[:4], bleu))
    out["METEOR"], _ = meteor.compute_score(gts, res)
    out["ROUGE_L"], _ = Rouge().compute_score(gts, res)
    out["CIDEr"], _ = Cider().compute_score(gts, res)
    return out


def assert_same(ours: dict, reference: dict, names=NAMES):
    for name in names:
        assert abs(ours[name] - reference[name]) <= TOL, (name, ours[name], reference[name])


@pytest.fixture(scope="session")
def spot_pairs(shared_dir):
    """Spot-the-Diff val: 300 entries, references = the entry's sentences, prediction = next entry's first."""
    entries = json.loads((shared_dir / "data" / "spot_the_diff" / "annotations" / "val.json").read_text())[:300]
    n = len(entries)
    return [entries[(i + 1) % n]["sentences"][0] for i in range(n)], [e["sentences"] for e in entries]


@pytest.fixture(scope="session")
def iedit_pairs(shared_dir):
    """Image Editing Request test: 200 pairs, one of the three references held out as the prediction."""
    entries = json.loads((shared_dir / "data" / "image_editing_request" / "test.json").read_text())[:200]
    return [e["sents"][0] for e in entries], [e["sents"][1:] for e in entries]


# -- no JVM needed ---------------------------------------------------------------------------------
def test_lcs_equals_pycocoevalcap():
    import random

    from pycocoevalcap.rouge.rouge import my_lcs

    rng = random.Random(0)
    for _ in range(300):
        a = [rng.choice("abcde") for _ in range(rng.randint(0, 25))]
        b = [rng.choice("abcdef") for _ in range(rng.randint(0, 25))]
        assert stats.lcs(a, b) == my_lcs(a, b)
    assert stats.lcs([""], [""]) == 1  # pycocoevalcap's split(" ") quirk, kept


def test_aggregate_stats_drops_the_chunk_of_a_perfect_segment():
    perfect = "3.0 3.0 1.0 1.0 2.0 2.0 1.0 1.0 0.0 0.0 0.0 0.0 0.0 0.0 0.0 0.0 0.0 0.0 0.0 0.0 1.0 3.0 3.0"
    partial = "4.0 5.0 1.0 1.0 2.0 2.0 0.0 0.0 0.0 0.0 0.0 0.0 0.0 0.0 0.0 0.0 0.0 0.0 0.0 0.0 2.0 2.0 2.0"
    total = aggregate_stats(parse_stats([perfect, partial]))
    assert total[20] == 2.0 and total[0] == 7.0


@pytest.mark.parametrize(
    "predictions, references, message",
    [
        (["a", "b"], [["a"]], "2 predictions but 1 reference lists"),
        (["a", "b"], [["a"], []], "sample 1: no reference"),
        (["a", None], [["a"], ["b"]], "sample 1: the prediction must be a string"),
        (["a", 3], [["a"], ["b"]], "sample 1: the prediction must be a string, got int"),
        (["a", "b"], [["a"], ["b", 7]], "sample 1: reference 1 must be a string, got int"),
        (["a", "b"], [["a"], "b"], "sample 1: references must be a list"),
        ("a b", [["a b"]], "predictions must be a list"),
        ([], [], "no samples"),
    ],
)
def test_bad_input_raises_value_error_naming_the_sample(predictions, references, message):
    with pytest.raises(ValueError, match=message):
        score_captions(predictions, references)


def test_bad_groups_and_metrics():
    with pytest.raises(ValueError, match="groups must be a list with one entry a sample"):
        score_captions(["a"], [["a"]], groups=[["x"], ["y"]])
    with pytest.raises(ValueError, match="sample 0 .*group labels"):
        score_captions(["a"], [["a"]], groups=[[3]], sample_ids=["pair-1"])
    with pytest.raises(ValueError, match="unknown metric 'bertscore'"):
        score_captions(["a"], [["a"]], metrics=["bertscore"])
    assert metrics.normalize_metrics(["ROUGE_L", "Bleu_2", "cider-d"]) == ["bleu", "rouge", "cider"]


def test_spice_is_opt_in_with_a_clear_error():
    lib = metrics.pycocoevalcap_dir() / "spice" / "lib"
    if (lib / "stanford-corenlp-3.6.0.jar").is_file():
        pytest.skip("Stanford CoreNLP 3.6.0 is installed here")
    with pytest.raises(SpiceUnavailableError, match="Stanford CoreNLP 3.6.0.*network") as caught:
        score_captions(["a red car"], [["a red car"]], metrics=["bleu", "spice"])
    assert "\n" not in str(caught.value) and isinstance(caught.value, ValueError)


def test_no_java_gives_the_install_hint(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(JavaNotFoundError, match="install a Java runtime"):
        score_captions(["a"], [["a"]], metrics=["bleu"])
    with pytest.raises(JavaNotFoundError, match="default-jdk-headless"):
        PTBTokenizer().tokenize(["not cached yet, so the JVM is needed"])


def test_meteor_timeout_kills_the_jvm_and_the_next_call_restarts(tmp_path):
    import sys

    hung = MeteorServer(timeout=0.5, command=[sys.executable, "-c", "import time; time.sleep(60)"])
    started = time.perf_counter()
    with pytest.raises(MeteorError, match="no answer from the JVM within 0.5 s.*next call starts a new JVM"):
        hung.segment_stats([("a", ["a"])])
    assert time.perf_counter() - started < 10
    assert not hung.alive
    dead = MeteorServer(timeout=5, command=[sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"])
    with pytest.raises(MeteorError, match="exited"):
        dead.segment_stats([("a", ["a"])])
    assert dead.starts == 1
    with pytest.raises(MeteorError):
        dead.segment_stats([("a", ["a"])])
    assert dead.starts == 2  # restarted


# -- parity with pycocoevalcap (JVMs) --------------------------------------------------------------
@pytest.mark.slow
def test_parity_spot_the_diff(spot_pairs, coco_meteor):
    predictions, references = spot_pairs
    ours = score_captions(predictions, references)
    assert_same(ours, coco_scores(*coco_tokenize(predictions, references), coco_meteor))
    assert ours["num_samples"] == len(predictions)


@pytest.mark.slow
def test_parity_image_editing_request(iedit_pairs, coco_meteor):
    predictions, references = iedit_pairs
    assert_same(score_captions(predictions, references), coco_scores(*coco_tokenize(predictions, references), coco_meteor))


@pytest.mark.slow
def test_breakdown_equals_the_reference_pipeline_on_each_subset(spot_pairs, coco_meteor):
    predictions, references = spot_pairs
    labels = ["color", "addition", "removal", "move"]
    groups = [[labels[i % 4]] + (["counting"] if i % 5 == 0 else []) for i in range(len(predictions))]
    groups[7] = []  # a sample without change type counts only in the overall score
    ours = score_captions(predictions, references, groups=groups)
    gts, res = coco_tokenize(predictions, references)
    assert_same(ours, coco_scores(gts, res, coco_meteor))
    assert sorted(ours["groups"]) == sorted(labels + ["counting"])
    for label, scores in ours["groups"].items():
        members = [i for i, g in enumerate(groups) if label in g]
        assert scores["num_samples"] == len(members)
        subset = coco_scores({i: gts[i] for i in members}, {i: res[i] for i in members}, coco_meteor)
        assert_same(scores, subset)
    # a group of one: CIDEr-D is 0 by construction, as in pycocoevalcap
    single = score_captions(predictions[:3], references[:3], groups=[["x"], ["y"], ["y"]], metrics=["cider"])
    assert single["groups"]["x"]["CIDEr"] == 0.0
    # a group whose predictions share no word with its references: CIDEr 0, not a crash
    disjoint = score_captions(["a cat sat", "zz qq"], [["a cat sat down"], ["xx yy"]], groups=[["x"], ["y"]],
                              metrics=["cider"])
    assert disjoint["groups"]["y"]["CIDEr"] == 0.0
    from pycocoevalcap.cider.cider import Cider

    assert disjoint["CIDEr"] == pytest.approx(Cider().compute_score({0: ["a cat sat down"], 1: ["xx yy"]},
                                                                    {0: ["a cat sat"], 1: ["zz qq"]})[0], abs=1e-9)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_awkward_captions_score_correctly_and_stay_aligned(spot_pairs, coco_meteor):
    predictions, references = [list(x[:12]) for x in spot_pairs]
    awkward = [
        "the car\nis gone",  # newline
        "the car ||| is gone",  # METEOR's field separator
        "the\tcar is\t gone",  # tabs
        "le café est fermé — “naïve” 日本語",  # non-ASCII
        "... !!! ?",  # punctuation only
        "",  # empty
        "the car\r\nis gone\u2028now",  # line breaks pycocoevalcap does not replace
        "   ",  # blank
    ]
    for k, caption in enumerate(awkward):
        predictions[k] = caption
    references[8] = ["a person is there |||", "", "naïve\nreference"]
    ours = score_captions(predictions, references)
    # pycocoevalcap on the same corpus, line breaks written as spaces (it misaligns on \r and U+2028)
    clean_predictions = [p.replace("\r", " ").replace("\u2028", " ") for p in predictions]
    assert_same(ours, coco_scores(*coco_tokenize(clean_predictions, references), coco_meteor))
    # and every sample scored alone sees its own references (no shift): the caption equal to its
    # references gets a perfect BLEU-1 wherever it sits
    probe = list(predictions)
    probe[10] = references[10][0]
    alone = score_captions(probe[10:11], references[10:11], metrics=["bleu"])
    assert alone["Bleu_1"] > 0.99


@pytest.mark.slow
def test_second_call_is_cached_and_concurrent_calls_agree(spot_pairs):
    predictions, references = [x[:150] for x in spot_pairs]
    first = score_captions(predictions, references)
    started = time.perf_counter()
    again = score_captions(predictions, references)
    assert time.perf_counter() - started < 5
    assert again == first
    results, errors = [], []

    def worker(shift):
        try:
            preds = predictions[shift:] + predictions[:shift]
            results.append((shift, score_captions(preds, references)))
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(s,)) for s in (0, 1, 2, 0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert not errors
    by_shift = {}
    for shift, scores in results:
        assert by_shift.setdefault(shift, scores) == scores
    assert by_shift[0] == first
    pool = get_meteor()
    assert all(server.starts <= 1 for server in pool.servers)  # each JVM started once for every call and thread


# -- the evaluate module, its doctests, the widget -------------------------------------------------
def _load_metric_module():
    spec = importlib.util.spec_from_file_location("diff_caption_score_module", METRIC_DIR / "diff_caption_score.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_metric_doctests(monkeypatch):
    # evaluate.load("diff_caption_score") finds ./diff_caption_score/diff_caption_score.py
    monkeypatch.chdir(REPO / "metrics")
    module = _load_metric_module()
    failures, attempted = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert attempted >= 8 and failures == 0


@pytest.mark.slow
def test_metric_by_path_matches_the_library(spot_pairs, tmp_path):
    import evaluate

    metric = evaluate.load(str(METRIC_DIR / "diff_caption_score.py"))
    predictions, references = [x[:40] for x in spot_pairs]
    groups = [["a"] if i % 2 else ["b"] for i in range(40)]
    assert metric.compute(predictions=predictions, references=references, groups=groups) == score_captions(
        predictions, references, groups=groups
    )
    info = metric._info()
    assert set(info.features) == {"predictions", "references"}
    with pytest.raises(ValueError, match="sample 1: no reference"):
        metric.compute(predictions=["a", "b"], references=[["a"], []])


def test_metric_loads_by_bare_name_after_install(hf_home):
    import evaluate

    from diffbench.data.metric_install import install_metric

    install_metric("diff_caption_score")
    metric = evaluate.load("diff_caption_score")
    assert metric.name == "diff_caption_score"


def test_metric_card_front_matter():
    # what requirements.txt must hold is proved by installing it alone: tests/release/test_fresh_env.py
    card = (METRIC_DIR / "README.md").read_text()
    assert card.startswith("---\n") and "app_file: app.py" in card.split("---")[1]


@pytest.mark.slow
def test_gradio_widget_scores_and_reports_bad_input():
    gr = pytest.importorskip("gradio")
    spec = importlib.util.spec_from_file_location("diff_caption_score_app", METRIC_DIR / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    assert isinstance(app.demo, gr.Blocks)
    table, results = app.score(json.dumps(app.EXAMPLE), ["bleu", "cider"])
    assert "| disappearance | 2 |" in table and set(results["groups"]) == {"addition", "disappearance", "orientation"}
    with pytest.raises(gr.Error, match="sample 0: no reference"):
        app.score(json.dumps({"predictions": ["a"], "references": [[]]}), ["bleu"])
    with pytest.raises(gr.Error, match="not valid JSON"):
        app.score("{", ["bleu"])


# -- last: kill the shared JVM mid-run -------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_jvm_killed_mid_run_gives_a_clear_error_and_the_next_call_works(shared_dir, monkeypatch):
    entries = json.loads((shared_dir / "data" / "spot_the_diff" / "annotations" / "train.json").read_text())[:1000]
    predictions = [f"{entries[(i + 7) % 1000]['sentences'][0]} kill test" for i in range(1000)]
    references = [e["sentences"] for e in entries]
    server = get_meteor().servers[0]  # the first of the pool's JVMs: every call uses it
    before = server.starts if server.alive else server.starts + 1
    read = server._read
    reads = []

    def read_then_kill():
        line = read()
        reads.append(line)
        if len(reads) == 5:  # the JVM has answered 5 of 1,000 segments: kill it now
            server._process.kill()
        return line

    monkeypatch.setattr(server, "_read", read_then_kill)
    with pytest.raises(MeteorError, match="exited .*next call starts a new JVM") as caught:
        score_captions(predictions, references, metrics=["meteor"])
    assert "\n" not in str(caught.value)
    monkeypatch.undo()
    assert not server.alive
    again = score_captions(predictions[:20], references[:20])
    assert server.starts == before + 1 and 0 <= again["METEOR"] <= 1


#: the modules of the caption metrics, each with runnable examples; every other captions module's run too
WITH_EXAMPLES = {"java", "tokenizer", "meteor", "metrics", "stats", "bleu", "rouge", "cider", "spice", "inputs"}


@pytest.mark.parametrize("module", sorted({m.name for m in pkgutil.iter_modules(diffbench.captions.__path__)}))
def test_library_doctests(module):
    failures, attempted = doctest.testmod(importlib.import_module(f"diffbench.captions.{module}"))
    assert failures == 0 and (attempted >= 1 or module not in WITH_EXAMPLES)


def test_the_caption_metrics_import_without_torch():
    """The metrics (the evaluate module, ``diffbench score captions``) load in a core install: no torch."""
    code = "import sys, diffbench.captions.metrics; print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr
