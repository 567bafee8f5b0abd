"""Running the pipeline with BPS and its Parsl plugin on the local machine.

`ThreadPoolSite` is a Parsl site for ``lsst-ctrl-bps-parsl`` that runs the workflow's
jobs (each a ``pipetask`` command) from a pool of threads of the submitting process: no
worker pool, interchange or batch system. ``resources/bps-local.yaml`` (`BPS_SITE_PATH`)
selects it; a submission file includes it, or gives its settings itself::

    includeConfigs:
      - /path/to/dcrmodel/pipeline/resources/bps-local.yaml
    pipelineYaml: "/path/to/dcrmodel/pipeline/resources/dcr-pipeline.yaml#dcrAssembleCoadd"
    payload:
      payloadName: dcrModel
      butlerConfig: /path/to/REPO
      inCollection: RUN
      dataQuery: ""

BPS writes each job's command with ``${CTRL_MPEXEC_DIR}/bin/pipetask`` (and its final job
with ``${DAF_BUTLER_DIR}/bin/butler``): outside the Rubin software distribution both
variables must name the environment that holds those scripts (a virtual environment's
folder, ``sys.prefix``) before ``bps submit`` runs.
"""

from __future__ import annotations

import importlib.resources

from lsst.ctrl.bps.parsl.configuration import get_bps_config_value
from lsst.ctrl.bps.parsl.site import SiteConfig
from parsl.executors import ThreadPoolExecutor
from parsl.executors.base import ParslExecutor

__all__ = ["BPS_SITE_PATH", "ThreadPoolSite"]

#: The BPS configuration that selects `ThreadPoolSite` (a package resource).
BPS_SITE_PATH = importlib.resources.files(__package__) / "resources" / "bps-local.yaml"


class ThreadPoolSite(SiteConfig):
    """Parsl site running every job from a thread pool on this machine.

    The number of jobs run at once is ``site.<computeSite>.cores`` (default 1).
    """

    def get_executors(self) -> list[ParslExecutor]:
        """Return the one thread-pool executor, labelled ``local``."""
        cores = get_bps_config_value(self.site, "cores", int, 1)
        return [ThreadPoolExecutor(label="local", max_threads=cores)]

    def select_executor(self, job: object) -> str:
        """Run every job on the ``local`` executor."""
        return "local"
