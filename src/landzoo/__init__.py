"""landzoo: benchmark, scale, train and transfer deep models for Sentinel-2 land-cover classification.

The package is laid out by role:

* :mod:`landzoo.contract`: the data contract (band and class names, orders, mappings, statistics);
* :mod:`landzoo.datasets`: readers of the raw datasets (BigEarthNet v1/v2, SEN12MS, EuroSAT);
* :mod:`landzoo.synthetic`: writers of format-exact synthetic copies of those datasets;
* :mod:`landzoo.cli`: the ``landzoo`` command.
"""

__version__ = "0.1.0"
