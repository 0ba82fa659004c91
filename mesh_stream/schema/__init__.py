"""Avro contracts: parsing, canonical form, compatibility, Confluent wire framing, codecs."""
