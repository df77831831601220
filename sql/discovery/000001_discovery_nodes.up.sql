-- Cluster discovery for mimmigrate's own nodes: MongooseIM's
-- discovery_nodes layout (priv/pg.sql, 6.2.1+), so that its tools read it.
CREATE TABLE discovery_nodes (
    cluster_name varchar(250) NOT NULL,
    node_name varchar(250) NOT NULL,
    node_num INT NOT NULL,
    address varchar(250) NOT NULL DEFAULT '', -- empty: ask DNS
    updated_timestamp BIGINT NOT NULL, -- in seconds, the database's clock
    PRIMARY KEY (node_name)
);
CREATE UNIQUE INDEX i_discovery_nodes_node_num ON discovery_nodes USING BTREE(cluster_name, node_num);
