"""The broker config file: its schema, loading with located errors, and the settings it makes.

`broker_settings` lives in `broker.config.settings` and is imported from there, so reading and
checking a config does not load the broker's servers and store.
"""

from broker.config.loading import BrokerConfigError, load_broker_config
from broker.config.schema import BrokerConfig, PlacementConfig
from located_yaml import Override

__all__ = [
    "BrokerConfig",
    "BrokerConfigError",
    "Override",
    "PlacementConfig",
    "load_broker_config",
]
