# `make cluster`: a local redis-server and one wschat node per core on the default ports (mk/cluster.sh).
.PHONY: cluster
cluster: build
	mk/cluster.sh
