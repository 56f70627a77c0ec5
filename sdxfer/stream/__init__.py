"""Decoding streams of records: Decoder (one record -> one typed event),
Reassembler (continuation records -> whole events), the counts a sensor keeps
while it decodes, and the JSON vocabulary every tool shares."""
