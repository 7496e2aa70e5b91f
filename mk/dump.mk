# wschat-dump: the capture fixtures and the dump fuzz targets.
#   make fixtures       regenerate tests/fixtures/seed-*.pcap* with the real tcpdump against the real daemon
#                       (root or CAP_NET_RAW, python3; editcap from wireshark-common for the pcapng copy)
#   make dump-demo      print the seed capture's timeline
#   make fuzz           also runs dump_capture (seeds: the fixtures) and dump_stream (seeds: hand-made
#                       streams: a control byte, then pieces each led by a length/gap/segment-start byte)
FUZZ_TARGETS += dump_capture dump_stream

.PHONY: fixtures dump-demo

fixtures: build
	tests/fixtures/make-fixtures.sh
	cp tests/fixtures/seed-lo.pcap tests/fixtures/seed-lo.pcapng tests/fixtures/seed-any.pcap fuzz/corpus_seeds/dump_capture/

dump-demo: build
	$(RELEASE)/wschat-dump tests/fixtures/seed-any.pcap
