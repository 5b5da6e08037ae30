"""``execution.gpu`` in the batch decides whether kernel tasks ask Ray for a GPU."""

import pytest

from stressgrid.core import ConfigError
from stressgrid.cluster import gpu_request


@pytest.mark.ray
def test_cpu_only_cluster(ray_session):
    assert gpu_request("auto", 1.0) == 0.0
    assert gpu_request(False, 1.0) == 0.0
    with pytest.raises(ConfigError, match=r"execution.gpu: true, but the Ray cluster has no GPU"):
        gpu_request(True, 1.0)
