"""The package's top level: every public name is there, and importing it is cheap."""

import subprocess
import sys

import dcrmodel


def test_every_public_name_resolves_to_its_home():
    for name in dcrmodel.__all__:
        value = getattr(dcrmodel, name)
        assert value is not None, name
    assert dcrmodel.DcrModel.__module__ == "dcrmodel.model.core"
    assert set(dcrmodel.__all__) <= set(dir(dcrmodel))


def test_import_dcrmodel_loads_no_heavy_module():
    # Names are imported on first use (scikit-image's lazy loading), so `import dcrmodel`
    # does not pull in scipy or astropy; the first use of a name does.
    code = (
        "import sys, dcrmodel\n"
        "heavy = [m for m in ('scipy', 'astropy', 'dcrmodel.assemble') if m in sys.modules]\n"
        "from dcrmodel import DcrModel\n"
        "print(','.join(heavy), 'astropy' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True"]


def test_an_unknown_name_is_an_attribute_error():
    try:
        dcrmodel.notAName  # noqa: B018
    except AttributeError as error:
        assert "notAName" in str(error)
    else:
        raise AssertionError("no AttributeError")
