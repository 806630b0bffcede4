"""What only the MuJoCo backend has: its model arrays under randomization, and obstacle values checked at creation.
Everything of the backend contract is in test_backend_contract.py, for every backend."""

import numpy as np
import pytest

from bm_gym.obstacles import Box, Cylinder
from bm_gym.sim import DomainRandomizationCfg, MujocoBackend, MujocoBackendCfg


def test_invalid_obstacles_are_refused():
    with pytest.raises(ValueError, match="positive"):
        Cylinder(0, 0, -1.0)
    with pytest.raises(ValueError, match="non-finite"):
        Box(float("nan"), 0, 1, 1)


def test_domain_randomization_is_seeded_and_restored_in_the_model():
    cfg = DomainRandomizationCfg()
    sim = MujocoBackend(MujocoBackendCfg(randomization=cfg))
    sim.reset(seed=3)
    friction_a, mass_a = sim.model.geom_friction.copy(), sim.model.body_mass.copy()
    sim.reset(seed=3)
    np.testing.assert_array_equal(sim.model.geom_friction, friction_a)
    np.testing.assert_array_equal(sim.model.body_mass, mass_a)
    sim.reset(seed=4)
    assert not np.array_equal(sim.model.body_mass, mass_a)
    nominal = MujocoBackend()
    sim.set_randomization(None)
    sim.reset()
    np.testing.assert_allclose(sim.model.body_mass, nominal.model.body_mass)
    np.testing.assert_allclose(sim.model.geom_friction, nominal.model.geom_friction)
