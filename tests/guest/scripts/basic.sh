#!/bin/sh
# Guest side of reconnect_test.sh: the lease, a ping and an HTTP GET through the gateway.
. /lib/harness.sh
T_TIMEOUT=20
t_run dhcp-lease sh -c "echo ip=$HARNESS_IP gw=$HARNESS_GW; [ -n '$HARNESS_IP' ]"
t_run ping-gateway ping -c 2 -W 3 "$HARNESS_GW"
t_run http-get sh -c "wget -q -O - http://$HARNESS_GW:$HTTP_PORT/hello.txt | grep -q 'hello from the harness host'"
t_summary
