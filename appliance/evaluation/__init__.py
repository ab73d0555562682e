"""The measurement side of ``layerwatch eval`` (the entry point is :func:`appliance.evaluate.run_eval`).

- :mod:`.manifest`: the CSV of labelled frames (``path,label,camera,role[,sequence,time_s]``);
- :mod:`.scorer`: the seam to the detector (calibrate, score, learn an answer);
- :mod:`.feedback`: which frames are answered, and when (static, ``asked``, ``all``);
- :mod:`.stream`: one camera's rows in time order: score, count, vote, then learn;
- :mod:`.metrics`: per-frame figures (F1, false alarms, AUROC);
- :mod:`.prints`: per-print figures through the service's decision engine (``--prints``).
"""
