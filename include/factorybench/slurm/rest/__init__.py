"""SLURM's REST API (slurmrestd) as a factorybench transport.

Importing this package registers `make_transport("rest", ...)`. All knowledge of
slurmrestd's version-specific JSON shapes lives in `dialects`.
"""

from factorybench.slurm.rest.client import SlurmMessage, SlurmRestError
from factorybench.slurm.rest.dialects import DIALECTS, SUPPORTED
from factorybench.slurm.rest.tokens import (CommandTokenProvider, Secret, StaticTokenProvider,
                                            TokenProvider, jwt_expiry)
from factorybench.slurm.rest.transport import GONE_RAW_STATE, RestTransport

__all__ = [
    "CommandTokenProvider", "DIALECTS", "GONE_RAW_STATE", "RestTransport", "SUPPORTED", "Secret",
    "SlurmMessage", "SlurmRestError", "StaticTokenProvider", "TokenProvider", "jwt_expiry",
]
