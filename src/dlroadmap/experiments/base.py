"""What every experiment shares: a typed config with a `quick` preset, a Result, and the runner.

An experiment module under `dlroadmap.experiments` defines

    class Config(ExperimentConfig): ...          # every hyperparameter, typed and bounded
    def run(config: Config, tracker: Tracker) -> Result

and never prints: it reports through the tracker (metrics, figures) and the shared progress bar.
Where a node's experiment lives follows from its id (registry.Node.experiment); running it is
`dlroadmap.runner`'s job.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field


# The item type of a list of sizes or counts (layer widths, matrix sizes, sample counts): a 0 or a negative
# number is refused with the field's name when the config is built, instead of crashing the run later.
PositiveInt = Annotated[int, Field(ge=1)]


class ExperimentConfig(BaseModel):
    """Base config. Subclasses add fields with bounds (`Field(ge=..., le=...)`) and set QUICK."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    seed: int = Field(0, ge=0, le=2**31 - 1, description="seed for every random number generator")
    device: str = Field("auto", description="auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16 = autocast to bfloat16 (fast on AMX CPUs and GPUs)")
    resume: bool = Field(False, description="continue from the run folder's latest checkpoint")
    compile: bool = Field(False, description="torch.compile the model of every training step (compiled once per machine and shape, cached)")

    # Overrides applied by --quick: small enough to finish in seconds to a minute on 2 cores.
    QUICK: ClassVar[dict[str, Any]] = {}

    @classmethod
    def quick(cls, **overrides: Any) -> "ExperimentConfig":
        return cls(**{**cls.QUICK, **overrides})


@dataclass
class Result:
    """What a run produced. `metrics` are checked against the node's expectations."""

    metrics: dict[str, float]
    artifacts: dict[str, str] = field(default_factory=dict)  # name -> path (plots, checkpoints, models)
    history: list[dict[str, float]] = field(default_factory=list)
    notes: str = ""
    # Filled in by runner.run_node:
    node: str = ""
    title: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    quick: bool = False
    preset: str = ""        # "quick" / "full" (the declared preset, any seed) or "custom" (overridden: verifies nothing)
    finished: str = ""      # ISO time the run ended
    seconds: float = 0.0
    expectations: list[dict[str, Any]] = field(default_factory=list)
    passed: bool = False
    environment: dict[str, Any] = field(default_factory=dict)   # machine, packages, git commit (dlroadmap.environment)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Experiment:
    """One node's experiment: `p2.cnn.filters` is `filters = Experiment(Config, run_filters)` in experiments/p2/cnn.py."""

    Config: type[ExperimentConfig]
    run: Any  # (config, tracker) -> Result
