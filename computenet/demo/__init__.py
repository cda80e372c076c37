"""`computenet demo`: a throw-away local federation replaying a slice of real GPU traces."""

from computenet.demo.options import DemoOptions, default_data_dir
from computenet.demo.processes import ProcessError
from computenet.demo.runner import DemoError, run_demo
from computenet.demo.simulator import SimulatorError
from computenet.demo.summary import RecordError, Summary
from computenet.demo.workload import WorkloadFileError

DEMO_ERRORS = (DemoError, ProcessError, RecordError, SimulatorError, WorkloadFileError)

__all__ = [
    "DEMO_ERRORS",
    "DemoError",
    "DemoOptions",
    "ProcessError",
    "RecordError",
    "SimulatorError",
    "Summary",
    "WorkloadFileError",
    "default_data_dir",
    "run_demo",
]
