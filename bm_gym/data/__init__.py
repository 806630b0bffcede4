"""Expert data: state definition, command schedules, collection into HDF5, and the windowed dataset."""

from bm_gym.data.collect import CollectCfg, Collector, StudentCfg
from bm_gym.data.dataset import ExpertWindowDataset
from bm_gym.data.hdf5 import DatasetError, DatasetSummary, validate
from bm_gym.data.state import StateLayout

__all__ = [
    "CollectCfg",
    "Collector",
    "DatasetError",
    "DatasetSummary",
    "ExpertWindowDataset",
    "StateLayout",
    "StudentCfg",
    "validate",
]
