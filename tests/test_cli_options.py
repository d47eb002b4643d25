"""The `chexmix` command line as a whole: every default shown, one dataset option group, split errors."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chexmix_dataset.cli import SUBCOMMANDS, _parser_for, main
from chexmix_dataset.commands.dataset_args import check_dataset_args
from chexmix_dataset.dataset.splits import parse_split
from chexmix_dataset.errors import ChexmixInputError

REPO = Path(__file__).resolve().parents[1]
DATASET_COMMANDS = ("build", "show", "export", "publish", "bench")


def subcommand_parser(name: str) -> argparse.ArgumentParser:
    parser, _ = _parser_for([name])
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return subparsers.choices[name]


def shown_forms(default: object) -> set[str]:
    """How a help text may write ``default``: as str() does, floats also as %g, sequences joined."""
    def written(value: object) -> str:
        return f"{value:g}" if isinstance(value, float) else str(value)

    if isinstance(default, (list, tuple)):
        return {" ".join(map(written, default)), ",".join(map(written, default))}
    return {str(default), written(default)}


def option_help_lines(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each option's entry of the printed --help as one line (COLUMNS is wide; a long invocation
    has its help on the next line), by its dest."""
    text = parser.format_help()
    entries = text.splitlines()
    entries = [line + (entries[i + 1] if line.strip().startswith("-") and i + 1 < len(entries)
                       and not entries[i + 1].strip().startswith("-") else "") for i, line in enumerate(entries)]
    formatter = parser._get_formatter()
    lines = {}
    for action in parser._actions:
        if action.help in (None, argparse.SUPPRESS) or not action.option_strings:
            continue
        invocation = formatter._format_action_invocation(action)
        (line,) = [line for line in entries if line.strip().startswith(invocation + " ")]
        lines[action.dest] = line
    return lines


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_help_of_every_subcommand_shows_every_default(name, monkeypatch, capsys) -> None:
    monkeypatch.setenv("COLUMNS", "100000")  # no wrapping: one line per option
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    parser = subcommand_parser(name)
    assert parser.format_help() == printed  # the parser checked is the one --help prints
    lines = option_help_lines(parser)
    checked = 0
    for action in parser._actions:
        if action.dest == "help" or action.default in (None, argparse.SUPPRESS) or not action.option_strings:
            continue
        line = lines[action.dest]
        assert "default" in line, f"chexmix {name} {action.option_strings[0]}: no default shown: {line.strip()}"
        if not isinstance(action.default, bool):
            forms = shown_forms(action.default)
            assert any(form in line for form in forms), \
                f"chexmix {name} {action.option_strings[0]}: default {action.default!r} not in: {line.strip()}"
        checked += 1
    assert checked >= 1  # every subcommand has options with a default


def dataset_group(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    (group,) = [g for g in parser._action_groups if g.title == "dataset"]
    return group


def test_dataset_commands_share_one_dataset_group() -> None:
    groups = {name: dataset_group(subcommand_parser(name)) for name in DATASET_COMMANDS}
    reference = [a.option_strings[0] for a in groups["build"]._group_actions]
    for option in ("--config", "--data-dir", "--split", "--seed", "--ct-fraction", "--mode", "--size", "--sources",
                   "--mirror", "--cache-dir", "--num-proc", "--geometry", "--view-deg", "--projector-device"):
        assert option in reference
    for name, group in groups.items():
        assert [a.option_strings[0] for a in group._group_actions] == reference, name
        # Same meaning: same destination and (but for --config, which commands word for themselves) same help.
        for action, build_action in zip(group._group_actions, groups["build"]._group_actions):
            assert action.dest == build_action.dest
            if action.dest != "config":
                assert (action.help, action.default, action.type) == (build_action.help, build_action.default,
                                                                       build_action.type), (name, action.dest)


def test_bench_keeps_not_given_detectable() -> None:
    args = subcommand_parser("bench").parse_args(["--out", "x"])
    assert (args.config, args.split, args.aug, args.ct_fraction) == (None, None, None, None)


@pytest.mark.parametrize("text, problem", [("120/30", "is 150, not 100"), ("50/40", "is 90, not 100"),
                                           ("0.6/0.4", "is 1, not 100"), ("100/0", "both parts above 0"),
                                           ("1.2", "both parts above 0"), ("sixty", "both parts above 0")])
def test_split_pairs_must_sum_to_100(text, problem) -> None:
    with pytest.raises(ChexmixInputError) as excinfo:
        parse_split(text)
    assert str(excinfo.value).startswith(f"--split {text!r} must be TRAIN/TEST percentages summing to 100")
    assert problem in str(excinfo.value)


@pytest.mark.parametrize("text, fraction", [("62.5/37.5", 0.625), ("70:30", 0.7), ("0.25", 0.25)])
def test_split_forms_that_sum_to_100_or_are_fractions(text, fraction) -> None:
    assert parse_split(text) == pytest.approx(fraction)


def run_chexmix(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "chexmix_dataset.cli", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("command", [["build"], ["show", "--out", "grid.png"], ["export", "coco", "--out", "coco"]])
def test_split_not_summing_to_100_is_one_line_and_exit_2(tmp_path, command) -> None:
    done = run_chexmix(*command, "--config", "sample", "--split", "120/30", "--cache-dir", str(tmp_path / "cache"),
                       cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"chexmix {command[0]}: error: --split '120/30' must be")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written, not even the cache


def test_bench_refuses_a_split_not_summing_to_100(tmp_path, capsys) -> None:
    assert main(["bench", "--config", "sample", "--split", "120/30", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("chexmix bench: error: --split '120/30' must be") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["build", "publish"])
def test_data_dir_with_the_sample_warns_that_it_is_unused(tmp_path, capsys, name) -> None:
    data = tmp_path / "data"
    data.mkdir()
    required = ["--repo-id", "org/name"] if name == "publish" else []
    args = subcommand_parser(name).parse_args([*required, "--config", "sample", "--data-dir", str(data)])
    check_dataset_args(args, [args.config] if isinstance(args.config, str) else args.config)
    assert capsys.readouterr().err == (f"warning: --data-dir {data} is not used: --config sample is built from "
                                       "phantoms and reads no source data\n")
    args = subcommand_parser(name).parse_args([*required, "--config", "mixed", "--data-dir", str(data)])
    check_dataset_args(args, [args.config] if isinstance(args.config, str) else args.config)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("argv, message", [
    (["build", "--config", "xrays_only", "--ct-fraction", "0.5"], "--ct-fraction replaces training CXRs"),
    (["build", "--config", "sample", "--num-proc", "0"], "--num-proc must be at least 1"),
    (["show", "--config", "mixed", "--ct-fraction", "1.5", "--out", "x.png"], "--ct-fraction must be in [0, 1]"),
    (["build", "--config", "sample", "--seed", "-1"], "--seed must be a non-negative integer"),
    (["bench", "--config", "ct_projections", "--ct-fraction", "0.5"], "--config ct_projections has none to replace"),
    (["bench", "--config", "sample", "--split", "official"], "--split official is for build"),
    (["bench", "--sweep", "ct-fraction=0,1", "--ct-fraction", "0.5"], "drop --ct-fraction"),
    (["bench", "--paper", "--ct-fraction", "0.5"], "drop --ct-fraction"),
])
def test_options_a_command_cannot_honour_are_refused(tmp_path, capsys, argv, message) -> None:
    extra = ["--out", str(tmp_path / "out")] if argv[0] == "bench" else ["--cache-dir", str(tmp_path / "cache")]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_export_into_an_existing_folder_names_the_cli_option(tmp_path, capsys) -> None:
    (tmp_path / "coco").mkdir()
    (tmp_path / "coco" / "other.txt").write_text("not an export")
    assert main(["export", "coco", "--config", "sample", "--out", str(tmp_path / "coco")]) == 2
    err = capsys.readouterr().err
    assert "give --overwrite to replace it" in err and "overwrite=True" not in err


def test_bench_passes_the_dataset_options_to_the_builder_as_build_does(tmp_path, monkeypatch) -> None:
    from helpers import tiny_dataset_dict

    import benchmark.cli as bench_cli
    import benchmark.harness as harness
    from chexmix_dataset.commands.dataset_args import builder_from_args

    loaded = []
    monkeypatch.setattr(bench_cli, "load_config", lambda config, data_dir, split, **options: loaded.append(
        (config, data_dir, split, options)) or (tiny_dataset_dict(), []))
    ran = []
    monkeypatch.setattr(harness, "run_grid", lambda cells, *args, **kwargs: ran.extend(cells) or {"runs": []})
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.md").write_text("stand-in\n")
    dataset_options = ["--config", "mixed", "--data-dir", str(tmp_path), "--split", "70/30", "--seed", "3",
                       "--ct-fraction", "0.5", "--size", "128", "--geometry", "cone", "--view-deg", "5",
                       "--sources", "covid_chestxray, covid19_ct_seg", "--num-proc", "2",
                       "--cache-dir", str(tmp_path / "cache"), "--mirror", "http://127.0.0.1:9/m"]
    assert main(["bench", *dataset_options, "--image-size", "64", "--out", str(tmp_path / "out")]) == 0
    ((config, data_dir, split, options),) = loaded
    assert (config, data_dir, split, options.pop("num_proc")) == ("mixed", tmp_path, "70/30", 2)
    # The same builder `chexmix build` would make from these options.
    built = builder_from_args(subcommand_parser("build").parse_args(dataset_options))
    assert built.config.train_test_split == "70/30" and built.config.data_dir == str(tmp_path)
    assert options.pop("cache_dir") == tmp_path / "cache" and str(built.cache_dir).startswith(str(tmp_path / "cache"))
    for name, value in options.items():
        assert getattr(built.config, name) == value, name
    assert set(options) == {"seed", "ct_fraction", "projector", "sources", "mirror"}
    assert options["projector"].size_px == 128 and options["projector"].geometry == "cone"
    assert options["projector"].view_deg == 5.0 and options["seed"] == 3 and options["ct_fraction"] == 0.5
    assert options["sources"] == ("covid_chestxray", "covid19_ct_seg")
    # What changes the rows is recorded with the run (results.json, resume checks); cache and mirror are not.
    (cell,) = ran
    assert dict(cell.dataset_options) == {"seed": "3", "ct_fraction": "0.5", "projector": str(options["projector"]),
                                          "sources": str(options["sources"])}


def test_resuming_under_other_dataset_options_is_refused() -> None:
    from benchmark.checkpoints import check_settings

    older = {"settings": {"epochs": 2}}  # written before dataset options were recorded: the defaults
    check_settings(older, {"epochs": 2, "dataset_options": {}}, "last.pt")
    with pytest.raises(ChexmixInputError, match=r"dataset_options \{\} \(now \{'seed': '3'\}\)"):
        check_settings(older, {"epochs": 2, "dataset_options": {"seed": "3"}}, "last.pt")
    with pytest.raises(ChexmixInputError, match="--weights last cannot resume"):
        check_settings({"settings": {"dataset_options": {"seed": "3"}}}, {"dataset_options": {}}, "last.pt")


def test_publish_builds_each_config_with_the_dataset_options(tmp_path, monkeypatch, capsys) -> None:
    from helpers import tiny_dataset_dict

    import chexmix_dataset.hub.publish as publish_mod

    built = []
    monkeypatch.setattr(publish_mod, "build_config", lambda config, data_dir, **options: built.append(
        (config, options)) or tiny_dataset_dict())
    monkeypatch.setattr(publish_mod, "check_publishable", lambda *args: None)
    code = main(["publish", "--repo-id", "org/name", "--config", "sample,xrays_only", "--split", "80/20", "--seed", "2",
                 "--ct-fraction", "0.25", "--local-dir", str(tmp_path / "hub")])
    assert code == 0, capsys.readouterr().err
    assert [config for config, _ in built] == ["sample", "xrays_only"]
    sample, xrays = (options for _, options in built)
    assert sample == {"split": "80/20", "seed": 2, "ct_fraction": 0.25}
    assert xrays == {"split": "80/20", "seed": 2}  # xrays_only mixes nothing: no --ct-fraction for it
