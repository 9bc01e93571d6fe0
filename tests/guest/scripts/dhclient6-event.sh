#!/bin/sh
# The `dhclient -6 -sf` script of dhcpv6.sh (busybox sh in the guest). ISC dhclient runs it at
# every event with a clean environment: it appends the reason to /tmp/d6.events, keeps the
# event's variables in /tmp/d6.<reason>, adds a leased address as a /128 (as Debian's
# dhclient-script does; the on-link /64 comes from the RA) and removes it at Release/Expiry, and
# writes the DNS servers and search list it got to /tmp/d6.resolv.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
echo "$reason" >> /tmp/d6.events
env | grep -E '^(reason|interface|new_|old_)' | sort > "/tmp/d6.$reason"
case "$reason" in
    BOUND6|RENEW6|REBIND6|REBOOT6|INFORM6)
        if [ -n "${new_ip6_address:-}" ] && ! ip -6 addr show dev "$interface" | grep -q "inet6 $new_ip6_address/"; then
            ip -6 addr add "$new_ip6_address/128" dev "$interface"
        fi
        {
            for s in ${new_dhcp6_name_servers:-}; do echo "nameserver $s"; done
            [ -z "${new_dhcp6_domain_search:-}" ] || echo "search $new_dhcp6_domain_search"
        } > /tmp/d6.resolv
        ;;
    RELEASE6|EXPIRE6|STOP6)
        [ -z "${old_ip6_address:-}" ] || ip -6 addr del "$old_ip6_address/128" dev "$interface"
        ;;
esac
exit 0
