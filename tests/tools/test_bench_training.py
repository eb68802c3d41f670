"""The training benchmark renders real SynthPose samples and times the trainer's own update per precision."""

import json

from support import assert_one_error_line, wildpose


def test_the_training_bench_prints_one_row_per_precision_and_writes_json(shared_data, tmp_path):
    result = wildpose("bench", "--training", "--presets", "tiny", "--batch", "4", "--seconds", "0.5",
                      "--device", "cpu", "--threads", "1", "--mocap", str(shared_data / "cmu_mocap"),
                      "--json", str(tmp_path / "t.json"), timeout=300)
    assert result.returncode == 0, result.stderr
    assert "| preset | precision | device | threads | batch | update ms | update samples/s |" in result.stdout
    rows = json.loads((tmp_path / "t.json").read_text())
    assert [(r["preset"], r["precision"], r["device"], r["threads"], r["batch"]) for r in rows] == [
        ("tiny", "fp32", "cpu", 1, 4), ("tiny", "bf16", "cpu", 1, 4)]
    for row in rows:
        assert row["samples_per_s"] == 4 * 1000.0 / row["step_ms"]
        assert row["render_ms_per_sample"] > 0 and row["peak_rss_mb"] > 0


def test_the_training_bench_refuses_an_engine_precision_and_a_folder_without_the_mocap(tmp_path):
    assert_one_error_line(wildpose("bench", "--training", "--precisions", "fp16"),
                          "--precisions for --training: unknown ['fp16']", "fp32", "bf16")
    assert_one_error_line(wildpose("bench", "--training", "--mocap", str(tmp_path)),
                          str(tmp_path), "lacks", "CMU BVH folder")


def test_the_loader_bench_times_the_trainers_loader_with_opencv_on_one_thread_and_on_its_default(shared_data,
                                                                                                  tmp_path):
    result = wildpose("bench", "--loader", "1", "--batch", "4", "--seconds", "0.5",
                      "--mocap", str(shared_data / "cmu_mocap"), "--json", str(tmp_path / "l.json"), timeout=300)
    assert result.returncode == 0, result.stderr
    assert "| workers | CPUs | OpenCV threads a worker | batch | samples/s | batches timed |" in result.stdout
    rows = json.loads((tmp_path / "l.json").read_text())
    assert [(r["workers"], r["opencv_threads"].split()[0], r["batch"]) for r in rows] == [
        (1, "1", 4), (1, "default", 4)]
    for row in rows:
        assert row["batches"] >= 3 and row["samples_per_s"] > 0 and row["cpus"] >= 1


def test_the_loader_bench_needs_a_worker():
    assert_one_error_line(wildpose("bench", "--loader", "0"), "--loader", "at least 1")
