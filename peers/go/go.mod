module consul-lock-peers/go-peer

go 1.19

require github.com/hashicorp/consul/api v1.12.0
