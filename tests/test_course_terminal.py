"""`course.terminal`: notebook 10 runs each step as its `cnclip-edu` command and shows it readably."""
from __future__ import annotations

import pytest

from cnclip_edu.course.terminal import CommandFailed, command_line, run_cli, visible_lines


def test_command_line_short_stays_on_one_line_and_quotes():
    assert command_line(["recall", "a b.jsonl", "p.jsonl", "o.json"]) == "cnclip-edu recall 'a b.jsonl' p.jsonl o.json"


def test_command_line_long_puts_one_flag_per_line():
    args = ["convert", "captions", "--images", "my photos", "--captions", "c.csv", "--out", "data/own",
            "--save-step-frequency", "-1", "--known-positives", "--max-side", "256"]
    assert command_line(args, width=40).splitlines() == [
        "cnclip-edu convert captions \\", "    --images 'my photos' \\", "    --captions c.csv \\",
        "    --out data/own \\", "    --save-step-frequency -1 \\", "    --known-positives \\", "    --max-side 256"]


def test_run_cli_shows_the_command_and_filtered_output(tmp_path, capsys):
    res = run_cli(["recall", "--help"], keep=r"--direction")
    out = capsys.readouterr().out
    assert out.startswith("$ cnclip-edu recall --help\n") and "--direction" in out and "positional" not in out
    assert "positional arguments" in res.output and res.wall_s > 0
    run_cli(["recall", "--help"], tail=2)
    assert "earlier lines not shown" in capsys.readouterr().out


def test_run_cli_failure_raises_with_the_output_tail(tmp_path):
    with pytest.raises(CommandFailed, match=r"(?s)exited with 1.*missing.jsonl: file not found"):
        run_cli(["recall", str(tmp_path / "missing.jsonl"), "p.jsonl", str(tmp_path / "o.json")], echo=False)


def test_visible_lines_drop_progress_bars_and_keep_the_last_carriage_return_segment():
    out = ("convert images:   0%|          | 0/18 [00:00<?, ?it/s]\rconvert images: 100%|##########| 18/18 "
           "[00:00<00:00, 60.70it/s]\n\nwrite train imgs: 18 img [00:00, 23475.58 img/s]\n"
           "train: images: 18, texts: 52 -> data/own\r\nstep 10 | loss 0.5 [ok]\n")
    assert visible_lines(out) == ["train: images: 18, texts: 52 -> data/own", "step 10 | loss 0.5 [ok]"]
