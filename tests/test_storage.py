"""Results locations: folders and URIs (file:// here; s3:// and gs:// go through the same pyarrow code)."""
import pytest

from vgs import storage
from vgs.config import ConfigError


def test_local_folder_and_file_uri_find_the_latest_restorable_sweep(tmp_path):
    for location in (str(tmp_path / "a"), f"file://{tmp_path / 'b'}"):
        root = storage.normalise(location)
        assert storage.latest_sweep(root, "gru_layers") is None
        for name, restorable in (("gru_layers_20260101-000000", True), ("gru_layers_20260102-000000", True),
                                 ("gru_layers_20260103-000000", False), ("smoke_20260104-000000", True)):
            folder = storage.join(root, name)
            storage.normalise(folder)
            if restorable:
                storage.write_text(storage.join(folder, "tuner.pkl"), "x")
        assert storage.latest_sweep(root, "gru_layers") == "gru_layers_20260102-000000"
    assert (tmp_path / "b" / "gru_layers_20260102-000000" / "tuner.pkl").read_text() == "x"


def test_unknown_scheme_is_named():
    with pytest.raises(ConfigError, match="nosuch://bucket"):
        storage.normalise("nosuch://bucket/path")
