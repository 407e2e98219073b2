"""Every vgs command that takes --data, --base, --tracking-uri or --skip-bad defines it through
vgs.cli_options, so each option reads the same in every command's --help."""

import importlib

import pytest

COMMANDS = {
    "vgs.train": {"--data", "--base", "--skip-bad"},
    "vgs.sweep.cli": {"--data", "--base", "--skip-bad", "--tracking-uri"},
    "vgs.data.prepare": {"--data", "--base", "--skip-bad"},
    "vgs.results.report": {"--tracking-uri"},
    "vgs.results.retrieve": {"--tracking-uri"},
    "vgs.tools.calibrate": {"--data", "--base"},
    "vgs.tools.distil_ssl": {"--data"},
    "vgs.tools.bench_features": {"--data"},
}
SHARED_WORDS = {
    "--data": "corpus folder: Flickr8K Audio, Places or SpokenCOCO layout",
    "--base": "named base config",
    "--skip-bad": "leave out missing or unreadable audio and image files",
    "--tracking-uri": "MLflow tracking URI: sqlite:///PATH or http://HOST:PORT",
}


def help_text(module: str, capsys) -> str:
    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines to the terminal


@pytest.mark.parametrize("module", sorted(COMMANDS))
def test_shared_options_read_the_same_in_every_command(module, capsys):
    text = help_text(module, capsys)
    for option in COMMANDS[module]:
        assert SHARED_WORDS[option] in text, (module, option, text)
