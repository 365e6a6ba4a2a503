"""The robot's uploader: a granted recording goes from the edge cache to the cloud's staging area
through pre-signed part URLs (the robot never holds bucket credentials).

- :mod:`.plan`: the control plane's upload plan, checked against the robot's manifest;
- :mod:`.transfer`: one part on the wire (MD5, rate cap, ETag check);
- :mod:`.state`: what was verified, in the agent's SQLite database (resume after a crash);
- :mod:`.uploader`: plan -> parts -> complete;
- :mod:`.api`: the control plane's upload routes.
"""

from .api import UploadApi
from .plan import PlanError, UploadPlan, parse_plan
from .state import UploadState
from .transfer import PartSender
from .uploader import GrantUnusable, UploadFailed, Uploader, UploadObserver, UploadResult, UploadStopped

__all__ = [
    "GrantUnusable", "PartSender", "PlanError", "UploadApi", "UploadFailed", "UploadObserver", "UploadPlan",
    "UploadResult", "UploadState", "UploadStopped", "Uploader", "parse_plan",
]
