"""stackmeter meters OpenStack usage per hour for billing.

Samplers publish Avro snapshots to Kafka, Faust workers turn them into hourly
usage, a product catalog prices it and a sink stores it in ClickHouse.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
