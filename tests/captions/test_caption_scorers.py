"""Each scorer module drops into pycocoevalcap's COCOEvalCap unchanged and gives its numbers.

COCOEvalCap.evaluate() is run twice on the same real Spot-the-Diff annotations (pycocotools' COCO and
loadRes, as CLEVR-Change's utils/eval_utils.py calls them): once with pycocoevalcap's own scorers and
tokenizer, once with ours put where it looks them up (``pycocoevalcap.eval.Bleu`` ...). SPICE cannot
run offline (it downloads CoreNLP), so in both runs it is replaced by a stand-in that scores 0; the
reference Meteor is one real pycocoevalcap Meteor JVM for the module (each evaluate() would start one).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from diffbench.captions import meteor
from diffbench.captions.bleu import Bleu
from diffbench.captions.cider import Cider
from diffbench.captions.java import (JavaNotFoundError, compiled_class, find_java, stop_process,
                                     write_in_background)
from diffbench.captions.meteor import Meteor, MeteorPool
from diffbench.captions.rouge import Rouge
from diffbench.captions.tokenizer import PTBTokenizer

pytestmark = pytest.mark.slow


class NoSpice:
    """Stands in for SPICE (needs a 400 MB download) in both runs; its numbers are not compared."""

    def compute_score(self, gts, res):
        return 0.0, [0.0] * len(gts)

    def method(self):
        return "SPICE"


@pytest.fixture(scope="module")
def coco_files(shared_dir, tmp_path_factory):
    """Spot-the-Diff val in COCO caption format: 250 pairs, blank references included as upstream has them."""
    entries = json.loads((shared_dir / "data" / "spot_the_diff" / "annotations" / "val.json").read_text())
    by_pair: dict[str, list[str]] = {}
    for entry in entries:
        by_pair.setdefault(str(entry["img_id"]), []).extend(entry["sentences"])
    pairs = list(by_pair.items())[:250]
    folder = tmp_path_factory.mktemp("coco")
    annotations = {"info": {}, "licenses": [], "type": "captions", "images": [], "annotations": []}
    for pair, sentences in pairs:
        annotations["images"].append({"id": pair})
        for sentence in sentences:
            annotations["annotations"].append({"id": len(annotations["annotations"]), "image_id": pair, "caption": sentence})
    results = [{"image_id": pairs[i][0], "caption": pairs[(i + 1) % len(pairs)][1][0]} for i in range(len(pairs))]
    (folder / "gt.json").write_text(json.dumps(annotations))
    (folder / "res.json").write_text(json.dumps(results))
    return folder / "gt.json", folder / "res.json"


def run_coco_eval(gt_path, res_path, monkeypatch, scorers: dict):
    from pycocoevalcap import eval as coco_eval_module
    from pycocotools.coco import COCO

    for name, factory in scorers.items():
        monkeypatch.setattr(coco_eval_module, name, factory)
    coco = COCO(str(gt_path))
    coco_res = coco.loadRes(str(res_path))
    evaluation = coco_eval_module.COCOEvalCap(coco, coco_res)
    evaluation.params["image_id"] = coco_res.getImgIds()
    evaluation.evaluate()
    monkeypatch.undo()
    return evaluation


def test_ours_drop_into_coco_eval_cap(coco_files, coco_meteor, monkeypatch):
    gt_path, res_path = coco_files
    reference = run_coco_eval(gt_path, res_path, monkeypatch, {"Meteor": lambda: coco_meteor, "Spice": NoSpice})
    ours = run_coco_eval(gt_path, res_path, monkeypatch, {
        "PTBTokenizer": PTBTokenizer, "Bleu": Bleu, "Meteor": Meteor, "Rouge": Rouge, "Cider": Cider, "Spice": NoSpice,
    })
    assert set(ours.eval) == set(reference.eval) == {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L",
                                                     "CIDEr", "SPICE"}
    for name, value in reference.eval.items():
        assert ours.eval[name] == pytest.approx(value, abs=1e-12, rel=0), name
    assert ours.imgToEval.keys() == reference.imgToEval.keys()
    for image, scores in reference.imgToEval.items():
        assert ours.imgToEval[image].keys() == scores.keys() and scores["image_id"] == image
        for name, value in scores.items():
            if name != "image_id":
                assert ours.imgToEval[image][name] == pytest.approx(value, abs=1e-12, rel=0), (image, name)


def test_compute_score_equals_pycocoevalcap_scorer_by_scorer(coco_files, coco_meteor):
    """The same tokenised gts / res to each pair of scorers: corpus score and per-image scores."""
    from pycocoevalcap.bleu.bleu import Bleu as CocoBleu
    from pycocoevalcap.cider.cider import Cider as CocoCider
    from pycocoevalcap.rouge.rouge import Rouge as CocoRouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer as CocoPTB

    gt_path, res_path = coco_files
    annotations = json.loads(gt_path.read_text())["annotations"]
    gts: dict = {}
    for annotation in annotations:
        gts.setdefault(annotation["image_id"], []).append({"caption": annotation["caption"]})
    res = {r["image_id"]: [{"caption": r["caption"]}] for r in json.loads(res_path.read_text())}
    coco_gts, coco_res = CocoPTB().tokenize(gts), CocoPTB().tokenize(res)
    assert PTBTokenizer().tokenize(gts) == coco_gts and PTBTokenizer().tokenize(res) == coco_res

    pairs = [(Bleu(4), CocoBleu(4)), (Meteor(), coco_meteor), (Rouge(), CocoRouge()), (Cider(), CocoCider())]
    for ours, theirs in pairs:
        assert ours.method() == theirs.method()
        kwargs = {"verbose": 0} if isinstance(ours, Bleu) else {}
        score, scores = ours.compute_score(coco_gts, coco_res, **kwargs)
        ref_score, ref_scores = theirs.compute_score(coco_gts, coco_res, **kwargs)
        np.testing.assert_allclose(np.asarray(score, dtype=float), np.asarray(ref_score, dtype=float), atol=1e-12, rtol=0)
        np.testing.assert_allclose(np.asarray(scores, dtype=float), np.asarray(ref_scores, dtype=float), atol=1e-12, rtol=0)


def test_compute_score_checks_its_input_like_pycocoevalcap():
    for scorer in (Bleu(4), Rouge(), Cider(), Meteor()):
        with pytest.raises(ValueError, match="same ids"):
            scorer.compute_score({1: ["a"]}, {2: ["a"]})
        with pytest.raises(ValueError, match="id 1: res must hold a list of exactly one caption"):
            scorer.compute_score({1: ["a"]}, {1: ["a", "b"]})
        with pytest.raises(ValueError, match="id 1: gts must hold a non-empty list"):
            scorer.compute_score({1: []}, {1: ["a"]})


@pytest.mark.parametrize("ending", ["exit", "kill"])
def test_no_jvm_outlives_its_process(tmp_path, ending):
    """The tokenizer and METEOR JVMs end with the process: at exit (atexit) and after a SIGKILL (stdin EOF)."""
    script = (
        "import sys, time\n"
        "from diffbench.captions.metrics import score_captions\n"
        "from diffbench.captions.meteor import get_meteor\n"
        "from diffbench.captions.tokenizer import get_tokenizer\n"
        "score_captions(['a red car'], [['the red car']])\n"
        "pids = [s._process.pid for s in get_meteor().servers if s.alive] + [get_tokenizer()._server.process.pid]\n"
        "print(*pids, flush=True)\n"
        "if sys.argv[1] == 'kill': time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, ending], stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) >= 2
    if ending == "kill":
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    deadline = time.monotonic() + 30
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = []
        for pid in pids:
            try:
                os.kill(pid, 0)
                with open(f"/proc/{pid}/stat") as stat:
                    if stat.read().split(") ")[1].startswith("Z"):
                        continue  # exited, awaiting its (dead) parent's reaper
                alive.append(pid)
            except (ProcessLookupError, FileNotFoundError):
                pass
    assert not alive, f"JVMs still running after the process ended: {alive}"


def test_meteor_pool_size_follows_spare_cores(monkeypatch):
    """A JVM more only where a core is spare, or where the job repays its paraphrase-table load."""
    pool = meteor.MeteorPool(workers=4, threaded=False)  # the jar's loop, JVMs; nothing starts until a call
    monkeypatch.setattr(meteor.os, "cpu_count", lambda: 2)
    assert pool.workers_for(9_524) == 1
    assert pool.workers_for(100_000) == 3
    monkeypatch.setattr(meteor.os, "cpu_count", lambda: 16)
    assert pool.workers_for(9_524) == 4
    assert pool.workers_for(600) == 1
    assert not pool.alive


def test_meteor_pool_of_two_jvms_answers_as_pycocoevalcap(coco_files, coco_meteor):
    """Segments split over two ready JVMs give, line for line, pycocoevalcap's Meteor._stat answers."""
    gt_path, res_path = coco_files
    annotations = json.loads(gt_path.read_text())["annotations"]
    by_pair: dict = {}
    for a in annotations:
        by_pair.setdefault(a["image_id"], []).append(a["caption"])
    hyps = {r["image_id"]: r["caption"] for r in json.loads(res_path.read_text())}
    tokenizer = PTBTokenizer()
    try:
        gts = tokenizer.tokenize({k: [{"caption": c} for c in v] for k, v in by_pair.items()})
        res = tokenizer.tokenize({k: [{"caption": hyps[k]}] for k in by_pair})
    finally:
        tokenizer.close()
    segments = [(res[k][0], gts[k]) for k in by_pair]
    pool = MeteorPool(workers=2, threaded=False)
    pool.MIN_CHUNK, pool.CHUNK, pool.SEGMENTS_PER_LOAD = 10, 20, 10
    try:
        pool.start(len(segments))
        assert pool._ready[0].wait(300)
        deadline = time.monotonic() + 300
        while not pool._ready[1].is_set() and time.monotonic() < deadline:
            pool.start(len(segments))
            time.sleep(0.2)
        assert pool._ready[1].is_set()
        ours = pool.segment_stats(segments)
        assert all(server.lines_received > 1 for server in pool.servers)  # both scored, not just the probe
        assert pool.starts == 2
    finally:
        pool.close()
    assert ours == [coco_meteor._stat(h, refs) for h, refs in segments]


def test_threaded_meteor_jvm_answers_as_pycocoevalcap_line_for_line(coco_files, coco_meteor):
    """One JVM scoring on 3 threads answers, in request order, what the jar's own loop answers."""
    gt_path, res_path = coco_files
    hyps = [r["caption"] for r in json.loads(res_path.read_text())]
    refs: dict = {}
    for a in json.loads(gt_path.read_text())["annotations"]:
        refs.setdefault(a["image_id"], []).append(a["caption"])
    references = list(refs.values())
    # every hypothesis against its own and a neighbour's references, raw text with odd cases included
    segments = [(h, r) for i, h in enumerate(hyps) for r in (references[i], references[i - 1])]
    segments += [("", ["a car"]), ("a red  car ||| here", ["the car is red", "a red car"]), ("café  été", ["cafe"])]
    pool = MeteorPool(workers=3)
    assert pool.threaded and len(pool.servers) == 1, "no javac here: the threaded driver did not compile"
    try:
        ours = pool.segment_stats(segments)
        assert pool.servers[0].command()[-7] == "DiffbenchMeteorServer"
        corpus = pool.eval_segments(ours)
    finally:
        pool.close()
    assert ours == [coco_meteor._stat(h, r) for h, r in segments]
    coco_meteor.meteor_p.stdin.write(("EVAL ||| " + " ||| ".join(ours) + "\n").encode())
    coco_meteor.meteor_p.stdin.flush()
    expected = [float(coco_meteor.meteor_p.stdout.readline().strip()) for _ in range(len(ours) + 1)]
    assert corpus == (expected[:-1], expected[-1])


def test_a_full_statistics_cache_still_answers_every_line(monkeypatch):
    """Past the cache's limit it is emptied, and the lines cached before still get their answers."""
    monkeypatch.setattr(meteor, "_STATS_CACHE_LIMIT", 2)
    cache = {}
    asked = []

    def score(missing):
        asked.append(list(missing))
        return [f"stats of {line}" for line in missing]

    assert meteor.cached_answers(cache, ["a", "b"], score) == ["stats of a", "stats of b"]
    # "a" and "b" are cached; "c" and "d" push the cache past its limit of 2.
    assert meteor.cached_answers(cache, ["a", "c", "b", "d"], score) == [
        "stats of a", "stats of c", "stats of b", "stats of d"]
    assert asked == [["a", "b"], ["c", "d"]] and cache == {"c": "stats of c", "d": "stats of d"}


# -- the JVM plumbing the tokenizer and METEOR share (diffbench.captions.java) ----------------------------
HELLO_SOURCE = 'public final class DiffbenchHello { public static void main(String[] a) { System.out.println("hi"); } }\n'


def test_find_java_takes_the_given_path_then_java_home_then_the_path(tmp_path, monkeypatch):
    real = find_java()
    home = tmp_path / "jdk"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").symlink_to(real)
    monkeypatch.setenv("JAVA_HOME", str(home))
    assert find_java() == str(home / "bin" / "java")
    assert find_java(real) == real
    monkeypatch.delenv("JAVA_HOME")
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    with pytest.raises(JavaNotFoundError, match=r"no Java runtime found \(java\).*default-jdk-headless"):
        find_java()
    with pytest.raises(JavaNotFoundError, match=r"\(/nowhere/java\)"):
        find_java("/nowhere/java")


def test_a_driver_is_compiled_once_a_user_and_one_that_does_not_compile_is_none(tmp_path, monkeypatch):
    java = find_java()
    if not (Path(java).resolve().parent / "javac").is_file() and not shutil.which("javac"):
        pytest.skip("no javac here (a JRE only): the callers run the jars' own commands")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = compiled_class(java, "DiffbenchHello", HELLO_SOURCE, tmp_path)
    assert folder is not None and folder.parent == tmp_path / "cache" / "diffbench" / "java" / "DiffbenchHello"
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no build folder left behind
    ran = subprocess.run([java, "-cp", str(folder), "DiffbenchHello"], capture_output=True, text=True, timeout=60)
    assert ran.stdout == "hi\n"
    broken = compiled_class(java, "DiffbenchBroken", "public final class DiffbenchBroken {", tmp_path)
    assert broken is None and not any((folder.parent.parent / "DiffbenchBroken").iterdir())
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))  # no javac from here on
    assert compiled_class("/nowhere/bin/java", "DiffbenchHello", HELLO_SOURCE, tmp_path) == folder  # compiled once
    assert compiled_class("/nowhere/bin/java", "DiffbenchHello", HELLO_SOURCE + "// v2\n", tmp_path) is None


def test_stopping_a_jvm_closes_its_stdin_then_kills_it_and_a_failed_write_is_kept_not_raised():
    reader = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.buffer.read()"], stdin=subprocess.PIPE)
    stop_process(reader)
    assert reader.returncode == 0  # it read its stdin to the end and left by itself
    stuck = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], stdin=subprocess.PIPE)
    started = time.monotonic()
    stop_process(stuck)
    assert stuck.returncode == -signal.SIGKILL and time.monotonic() - started < 10
    gone = subprocess.Popen([sys.executable, "-c", "pass"], stdin=subprocess.PIPE)
    gone.wait(timeout=30)
    writer, errors = write_in_background(gone.stdin, b"SCORE ||| a ||| a\n" * 100_000)
    writer.join(timeout=30)
    assert not writer.is_alive() and len(errors) == 1 and isinstance(errors[0], BrokenPipeError)
    with contextlib.suppress(BrokenPipeError):  # what is left in its buffer cannot be flushed
        gone.stdin.close()
