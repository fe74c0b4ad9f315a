"""The citizens service: the kelurahan's resident registry, its vulnerable residents, a live monograph."""
