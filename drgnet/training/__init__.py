"""Training: one loop (``engine``) and the tasks it runs, each owning its losses.

``engine``: the step loop, parameter groups, schedules, ``fit`` (epochs, best / resumable checkpoints, torchrun);
``task``: the joint objective; ``adapt``: camera adaptation; ``pipeline``: data folder to trained checkpoint;
``data``: datasets of batch items; ``evaluate``; ``distributed``; ``presets``; ``demo``. Checkpoints are read and
written beside the model (:mod:`drgnet.model.checkpoint`).
"""
