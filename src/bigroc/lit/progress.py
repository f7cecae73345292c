"""A progress bar that names what the run does (Lightning's says "Testing" for any test loop)."""

from __future__ import annotations

from lightning.pytorch.callbacks import RichProgressBar


class StageProgressBar(RichProgressBar):
    """Rich progress (batches done, elapsed and remaining time) under the run's own label."""

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label

    @property
    def test_description(self) -> str:
        return self.label
