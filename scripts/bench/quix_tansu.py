"""Makes quixstreams work against tansu; imported by the quixstreams peers
of `tributary bench docs` and `tributary bench shop` before they build an
Application.

tansu answers DescribeConfigs without "retention.ms"; quixstreams reads
"retention.bytes" with a default (for Kafka-like platforms) but indexes
"retention.ms" directly when it derives a topic's (or changelog topic's)
config. This defaults it the same way (-1 = infinite, Kafka's meaning)
before deriving.
"""

from quixstreams.models.topics.manager import TopicManager

_derive = TopicManager.derive_topic_config.__func__


def _derive_with_defaults(cls, topics):
    for t in topics:
        if t.broker_config is not None:
            t.broker_config.extra_config.setdefault("retention.ms", "-1")
    return _derive(cls, topics)


TopicManager.derive_topic_config = classmethod(_derive_with_defaults)
