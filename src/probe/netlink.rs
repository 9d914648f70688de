//! rtnetlink link dump and route lookup, and ethtool FEATURES_GET over generic netlink (neli).
