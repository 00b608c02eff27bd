"""landzoo: benchmark, scale, train and transfer deep models for Sentinel-2 land-cover classification.

The package is laid out by role:

* :mod:`landzoo.contract`: the data contract (band and class names, orders, mappings, statistics);
* :mod:`landzoo.datasets`: readers of the raw datasets (BigEarthNet v1/v2, SEN12MS, EuroSAT);
* :mod:`landzoo.synthetic`: writers of format-exact synthetic copies of those datasets;
* :mod:`landzoo.store`: the encoded store, its Dataset/DataModule, encode/verify/info/bench-io;
* :mod:`landzoo.transforms`: on-device normalisation, resampling and augmentation;
* :mod:`landzoo.models` and :mod:`landzoo.scaling`: the model zoo (registered in timm) and compound scaling;
* :mod:`landzoo.metrics`: the multi-label metrics, synchronised across processes;
* :mod:`landzoo.training`: the Lightning module, protocols, cost measurement, benchmark and leaderboard;
* :mod:`landzoo.checkpoint`: checkpoints that carry their data contract, and the model-hub export;
* :mod:`landzoo.transfer`: band-aware transfer to SEN12MS, EuroSAT and BigEarthNet v2;
* :mod:`landzoo.cli`: the ``landzoo`` command.

``import landzoo`` registers the zoo's architectures in timm, so ``timm.create_model("wrn_eca_b0",
in_chans=10, num_classes=19)`` works after it (this imports torch and timm).
"""

__version__ = "0.1.0"

# registers the zoo in timm; after __version__, which the zoo reads
from landzoo import models as models
