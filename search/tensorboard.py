"""TensorBoard runs: each trial writes ``<trial>/train`` and ``<trial>/validation`` scalars."""

from __future__ import annotations

from pathlib import Path


def write_trial(logdir: Path, run: str, curve: dict[str, list[float]]) -> None:
    """Write one trial's per-epoch curves (``loss``, ``mse``... and ``val_*``) as scalars.

    Written once at the end of the trial rather than by a Keras callback: it costs no time
    inside ``fit`` and works the same on every Keras backend.
    """
    import tensorflow as tf

    for split, prefix in (("train", ""), ("validation", "val_")):
        series = {
            key[len(prefix) :]: values
            for key, values in curve.items()
            if key.startswith("val_") == bool(prefix)
        }
        if not series:
            continue
        writer = tf.summary.create_file_writer(str(logdir / run / split))
        with writer.as_default():
            for name, values in series.items():
                for epoch, value in enumerate(values, start=1):
                    tf.summary.scalar(f"epoch_{name}", value, step=epoch)
        writer.close()
