"""Old import path of the confluent-kafka adapters, kept only for modules not yet moved to the new
ones (`connector.kafka.config`, `.consumer`, `.producer`, `.reader`, `.admin`)."""

from connector.kafka.admin import KafkaAdmin
from connector.kafka.config import READER_GROUP_ID, admin_config, consumer_config, reader_config
from connector.kafka.consumer import KafkaConsumer
from connector.kafka.producer import KafkaProducer
from connector.kafka.reader import PartitionReader

__all__ = [
    "READER_GROUP_ID",
    "KafkaAdmin",
    "KafkaConsumer",
    "KafkaProducer",
    "PartitionReader",
    "admin_config",
    "consumer_config",
    "reader_config",
]
