import pickle

import pytest

from dcrmodel import errors


def test_errors_subclass_builtins():
    assert issubclass(errors.DcrValueError, ValueError)
    assert issubclass(errors.DcrTypeError, TypeError)
    assert issubclass(errors.DcrShapeError, ValueError)
    assert issubclass(errors.DcrMetadataError, ValueError)
    assert issubclass(errors.DcrFitsError, ValueError)
    assert issubclass(errors.DcrConfigError, ValueError)
    assert issubclass(errors.DcrOutputError, OSError)
    assert issubclass(errors.DcrOfflineWarning, UserWarning)


def test_error_carries_values_in_message():
    with pytest.raises(ValueError, match=r"bad shape; fix it \[shape=\(2, 3\), name='x'\]"):
        raise errors.DcrShapeError("bad shape; fix it", shape=(2, 3), name="x")
    err = errors.DcrValueError("oops", value=1.5)
    assert err.values == {"value": 1.5}
    assert err.message == "oops"


def test_long_values_are_truncated():
    err = errors.DcrValueError("big", data=list(range(1000)))
    assert len(str(err)) < 260
    assert str(err).endswith("...]")


def test_errors_pickle_round_trip():
    err = pickle.loads(pickle.dumps(errors.DcrFitsError("missing HDU", hdu="MASK")))
    assert isinstance(err, errors.DcrFitsError)
    assert "missing HDU" in str(err) and "MASK" in str(err)
