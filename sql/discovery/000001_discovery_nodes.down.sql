DROP TABLE discovery_nodes;
