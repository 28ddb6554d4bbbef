import pytest
from pydantic import ValidationError

from torchslim.core.config import (
    CONFIGS,
    Config,
    config_from_dict,
    config_from_yaml,
    handler_for,
    register_handler,
    snake_case,
)
from torchslim.core.errors import ConfigError, UnknownNameError
from torchslim.core.registry import Registry


class ToyScale(Config):
    factor: float = 2.0
    layers: tuple[str, ...] = ("fc",)


class ToyUnhandled(Config):
    n: int = 1


@register_handler(ToyScale)
def _apply_toy(model, config):
    return model * config.factor


@pytest.mark.parametrize(
    "name, key",
    [("Int8Static", "int8_static"), ("NMPrune", "nm_prune"), ("KD", "kd"), ("FeatureKD", "feature_kd"),
     ("LowRank", "low_rank"), ("QAT", "qat"), ("WeightOnly", "weight_only")],
)
def test_snake_case_type_keys(name, key):
    assert snake_case(name) == key


def test_config_round_trips_through_dict_and_yaml():
    c = ToyScale(factor=3.5, layers=("a", "b"))
    assert c.to_dict() == {"type": "toy_scale", "factor": 3.5, "layers": ["a", "b"]}
    assert config_from_dict(c.to_dict()) == c
    assert config_from_yaml(c.to_yaml()) == c


def test_config_is_frozen_and_refuses_unknown_fields():
    c = ToyScale()
    with pytest.raises(ValidationError, match="frozen"):
        c.factor = 1.0  # type: ignore[misc]
    with pytest.raises(ConfigError, match=r"stages\[0\]\.fcator"):
        config_from_dict({"type": "toy_scale", "fcator": 1.0}, where="stages[0]")


def test_wrong_value_type_names_the_field():
    with pytest.raises(ConfigError, match="factor"):
        config_from_dict({"type": "toy_scale", "factor": "big"})


def test_unknown_type_lists_known_names():
    with pytest.raises(UnknownNameError) as e:
        config_from_dict({"type": "toy_scael"})
    assert "toy_scale" in str(e.value) and "toy_scael" in str(e.value)


def test_missing_type_key_is_explained():
    with pytest.raises(ConfigError, match="'type'"):
        config_from_dict({"factor": 1.0})


def test_yaml_is_loaded_safely():
    with pytest.raises(ConfigError, match="no tags allowed"):
        config_from_yaml("!!python/object/apply:os.system ['echo hacked']")


def test_handler_lookup():
    assert handler_for(ToyScale(factor=3.0), "toy")(2, ToyScale(factor=3.0)) == 6.0
    with pytest.raises(UnknownNameError, match="toy_unhandled"):
        handler_for(ToyUnhandled(), "toy")


def test_registry_refuses_duplicates_and_lists_names():
    r: Registry[int] = Registry("thing")
    r.add("a", 1)
    with pytest.raises(ConfigError, match="already registered"):
        r.add("a", 2)
    with pytest.raises(UnknownNameError, match="known: a"):
        r.get("b")
    assert "a" in r and len(r) == 1 and list(r) == ["a"]


REQUIRED = {"block_prune": {"blocks": 1}}  # configs that must be told how much to do


@pytest.mark.parametrize("key", CONFIGS.names())
def test_every_registered_config_round_trips(key):
    """Contract test: every registered config serialises and reads back (with the smallest
    valid arguments where its defaults alone are not a valid config)."""
    cls = CONFIGS.get(key)
    c = cls(**REQUIRED.get(key, {}))
    assert config_from_yaml(c.to_yaml()) == c
    assert c.to_dict()["type"] == key
