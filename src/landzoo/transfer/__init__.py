"""Transfer learning from the zoo: band-aware first-layer adaptation, label fractions, protocols, the sweep.

* :mod:`.adapt`: match the first layer's input channels by band name (kept bit-exactly, dropped, or added
  by a documented rule) and load a pretrained checkpoint into a model built for the target;
* :mod:`.fractions`: reproducible, stratified (and by default nested) label-fraction subsets;
* :mod:`.protocols`: SEN12MS scene classification, EuroSAT, BigEarthNet as targets; resize vs crop;
* :mod:`.run`: initialisations x fractions x seeds -> table, plot and report (``landzoo transfer``).

Imports are lazy so ``import landzoo.transfer`` does not pull in torch.
"""

from __future__ import annotations

from landzoo._lazy import lazy_exports

_EXPORTS = {
    "AdaptError": "landzoo.transfer.adapt",
    "AdaptationReport": "landzoo.transfer.adapt",
    "adapt_input_weight": "landzoo.transfer.adapt",
    "find_input_layer": "landzoo.transfer.adapt",
    "find_head": "landzoo.transfer.adapt",
    "transfer_weights": "landzoo.transfer.adapt",
    "FractionError": "landzoo.transfer.fractions",
    "parse_fractions": "landzoo.transfer.fractions",
    "sample_fraction": "landzoo.transfer.fractions",
    "ProtocolError": "landzoo.transfer.protocols",
    "get_protocol": "landzoo.transfer.protocols",
    "open_target": "landzoo.transfer.protocols",
    "TransferError": "landzoo.transfer.config",
    "TransferConfig": "landzoo.transfer.config",
    "run_transfer": "landzoo.transfer.run",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
