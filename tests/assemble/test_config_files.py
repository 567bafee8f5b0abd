"""Configuration files: every key used or refused; encodings said plainly."""

import codecs

import pytest

from dcrmodel.assemble import DcrAssembleConfig
from dcrmodel.distributed import loadPlan
from dcrmodel.errors import DcrConfigError


def _load(tmp_path, content: bytes, name="c.toml"):
    path = tmp_path / name
    path.write_bytes(content)
    return DcrAssembleConfig.fromToml(path)


@pytest.mark.parametrize(
    "content, match",
    [
        # TOML puts a key above the first table header at the top level: it was dropped
        (b"dcrNumSubfilters = 5\n[assemble]\nmaxNumIter = 7\n",
         r"dcrNumSubfilters: key\(s\) outside the \[assemble\] table, where they would be "
         r"ignored; move them below \[assemble\]"),
        (b"[assemble]\nmaxNumIter = 7\n[other]\ndcrNumSubfilters = 5\n",
         r"other.dcrNumSubfilters: setting\(s\) in the table \[other\], where they would be "
         r"ignored; settings are read from \[assemble\] only"),
        (b"[assemble]\nmaxNumIter = 7\n[other.deeper]\nbaseGain = 0.5\n",
         r"other.deeper.baseGain: setting\(s\) in the table \[other\]"),
        (b"[assemble]\nmaxNumIter = 7\n[assmble]\nx = 5\n",
         r"the table \[assmble\] looks like a misspelt \[assemble\]"),
        (b"[assemble]\nmaxNumIter = 7\n[assemble.extra]\nx = 1\n", r"unknown setting\(s\) extra"),
        (b"assemble = 3\n", r"unknown setting\(s\) assemble"),
        (b"[assmble]\ndcrNumSubfilters = 5\n", r"unknown setting\(s\) assmble"),
    ],
)
def test_no_key_is_silently_ignored(tmp_path, content, match):
    with pytest.raises(DcrConfigError, match=match + r".*c\.toml"):
        _load(tmp_path, content)


def test_keys_that_are_used(tmp_path):
    assert _load(tmp_path, b"dcrNumSubfilters = 5\nmaxNumIter = 7\n").dcrNumSubfilters == 5
    config = _load(tmp_path, b"[assemble]\ndcrNumSubfilters = 5\n")
    assert config.dcrNumSubfilters == 5
    # other tools' tables beside [assemble] are not read (and hold no setting's name)
    config = _load(tmp_path, b"[assemble]\nmaxNumIter = 7\n[other]\nx = 1\n")
    assert config.maxNumIter == 7 and config.dcrNumSubfilters == "auto"
    assert _load(tmp_path, b"") == DcrAssembleConfig()


def test_encodings(tmp_path):
    # a UTF-8 byte-order mark (some editors write one) is skipped
    bom = _load(tmp_path, codecs.BOM_UTF8 + b"dcrNumSubfilters = 2\n# r\xc3\xa9glages\n")
    assert bom.dcrNumSubfilters == 2
    with pytest.raises(DcrConfigError, match=r"the configuration file is not UTF-8 text \(byte "
                       r"0xe9 on line 2\), but TOML files are UTF-8; save it as UTF-8"):
        _load(tmp_path, "dcrNumSubfilters = 2\n# r\xe9glages\n".encode("latin-1"))
    for encoding in ("utf-16", "utf-32"):
        with pytest.raises(DcrConfigError, match=f"is {encoding.upper()} text, but TOML files "
                           "are UTF-8; save it as UTF-8"):
            _load(tmp_path, "dcrNumSubfilters = 2\n".encode(encoding))
    with pytest.raises(DcrConfigError, match=r"not valid TOML: Invalid statement \(at line 1"):
        _load(tmp_path, codecs.BOM_UTF8 + codecs.BOM_UTF8 + b"x = 1\n")
    with pytest.raises(DcrConfigError, match="cannot read the configuration file: Is a directory"):
        DcrAssembleConfig.fromToml(tmp_path)


def test_plan_files_are_read_alike(tmp_path):
    from dcrmodel._validate import readTomlFile

    plan = tmp_path / "plan.toml"
    plan.write_bytes("# r\xe9glages\n[[patch]]\n".encode("latin-1"))
    with pytest.raises(DcrConfigError, match=r"the plan is not UTF-8 text \(byte 0xe9 on line 1"):
        loadPlan(plan)
    plan.write_bytes(codecs.BOM_UTF8 + b"[config]\nmaxNumIter = 7\n")
    with pytest.raises(DcrConfigError, match="lists no patch"):  # read past the mark
        loadPlan(plan)
    assert readTomlFile(plan, "plan") == {"config": {"maxNumIter": 7}}


def test_the_command_refuses_a_dropped_key(tmp_path, capsys):
    from dcrmodel.cli.main import main

    config = tmp_path / "c.toml"
    config.write_text("dcrNumSubfilters = 5\n[assemble]\nmaxNumIter = 7\n")
    assert main(["assemble", "a.fits", "b.fits", "--out", str(tmp_path / "m"),
                 "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dcrmodel assemble: error: dcrNumSubfilters: key(s) outside the "
                          "[assemble] table") and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]
