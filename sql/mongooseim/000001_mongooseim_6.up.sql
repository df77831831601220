-- mimmigrate schema "mongooseim", version 1: the PostgreSQL schema MongooseIM 6.x reads (its priv/pg.sql,
-- dynamic domains: a server column in every per-user key), table for table, column for column, with
-- its index names. MongooseIM's own test-only table (test_types) is left out.

CREATE TABLE users (
    username varchar(250),
    server varchar(250),
    "password" text NOT NULL,
    pass_details text,
    created_at timestamp NOT NULL DEFAULT now(),
    PRIMARY KEY (server, username)
);

CREATE TABLE last (
    server varchar(250),
    username varchar(250),
    seconds integer NOT NULL,
    state text NOT NULL,
    PRIMARY KEY (server, username)
);
CREATE INDEX i_last_server_seconds ON last USING btree (server, seconds);

CREATE TABLE rosterusers (
    server varchar(250) NOT NULL,
    username varchar(250) NOT NULL,
    jid text NOT NULL,
    nick text NOT NULL,
    subscription character(1) NOT NULL,
    ask character(1) NOT NULL,
    askmessage text NOT NULL,
    created_at timestamp NOT NULL DEFAULT now(),
    PRIMARY KEY (server, username, jid)
);

CREATE TABLE rostergroups (
    server varchar(250) NOT NULL,
    username varchar(250) NOT NULL,
    jid text NOT NULL,
    grp text NOT NULL,
    PRIMARY KEY (server, username, jid, grp)
);

CREATE TABLE roster_version (
    server varchar(250),
    username varchar(250),
    version text NOT NULL,
    PRIMARY KEY (server, username)
);

CREATE TABLE vcard (
    username varchar(150),
    server varchar(100),
    vcard text NOT NULL,
    created_at timestamp NOT NULL DEFAULT now(),
    PRIMARY KEY (server, username)
);

CREATE TABLE vcard_search (
    username varchar(150) NOT NULL,
    lusername varchar(100),
    server varchar(250),
    fn text NOT NULL,
    lfn text NOT NULL,
    family text NOT NULL,
    lfamily text NOT NULL,
    given text NOT NULL,
    lgiven text NOT NULL,
    middle text NOT NULL,
    lmiddle text NOT NULL,
    nickname text NOT NULL,
    lnickname text NOT NULL,
    bday text NOT NULL,
    lbday text NOT NULL,
    ctry text NOT NULL,
    lctry text NOT NULL,
    locality text NOT NULL,
    llocality text NOT NULL,
    email text NOT NULL,
    lemail text NOT NULL,
    orgname text NOT NULL,
    lorgname text NOT NULL,
    orgunit text NOT NULL,
    lorgunit text NOT NULL,
    PRIMARY KEY (server, lusername)
);
CREATE INDEX i_vcard_search_lfn ON vcard_search (lfn);
CREATE INDEX i_vcard_search_lfamily ON vcard_search (lfamily);
CREATE INDEX i_vcard_search_lgiven ON vcard_search (lgiven);
CREATE INDEX i_vcard_search_lmiddle ON vcard_search (lmiddle);
CREATE INDEX i_vcard_search_lnickname ON vcard_search (lnickname);
CREATE INDEX i_vcard_search_lbday ON vcard_search (lbday);
CREATE INDEX i_vcard_search_lctry ON vcard_search (lctry);
CREATE INDEX i_vcard_search_llocality ON vcard_search (llocality);
CREATE INDEX i_vcard_search_lemail ON vcard_search (lemail);
CREATE INDEX i_vcard_search_lorgname ON vcard_search (lorgname);
CREATE INDEX i_vcard_search_lorgunit ON vcard_search (lorgunit);

CREATE TABLE privacy_default_list (
    server varchar(250),
    username varchar(250),
    name text NOT NULL,
    PRIMARY KEY (server, username)
);

CREATE TABLE privacy_list (
    server varchar(250) NOT NULL,
    username varchar(250) NOT NULL,
    name text NOT NULL,
    id serial UNIQUE,
    created_at timestamp NOT NULL DEFAULT now(),
    PRIMARY KEY (server, username, name)
);

CREATE TABLE privacy_list_data (
    id bigint REFERENCES privacy_list (id) ON DELETE CASCADE,
    t character(1) NOT NULL,
    value text NOT NULL,
    action character(1) NOT NULL,
    ord integer NOT NULL,
    match_all boolean NOT NULL,
    match_iq boolean NOT NULL,
    match_message boolean NOT NULL,
    match_presence_in boolean NOT NULL,
    match_presence_out boolean NOT NULL,
    PRIMARY KEY (id, ord)
);

CREATE TABLE private_storage (
    server varchar(250) NOT NULL,
    username varchar(250) NOT NULL,
    namespace varchar(250) NOT NULL,
    data text NOT NULL,
    created_at timestamp NOT NULL DEFAULT now(),
    PRIMARY KEY (server, username, namespace)
);

CREATE TYPE mam_behaviour AS ENUM ('A', 'N', 'R');
CREATE TYPE mam_direction AS ENUM ('I', 'O');

-- id: (microseconds << 8) | node number; message: the stanza as an
-- exml term (term_to_binary, compressed) unless the server is configured for XML.
CREATE TABLE mam_message (
    id bigint NOT NULL,
    user_id integer NOT NULL,
    from_jid varchar(250) NOT NULL,
    remote_bare_jid varchar(250) NOT NULL,
    remote_resource varchar(250) NOT NULL,
    direction mam_direction NOT NULL,
    message bytea NOT NULL,
    search_body text,
    origin_id varchar,
    is_groupchat boolean NOT NULL,
    PRIMARY KEY (user_id, id)
);
CREATE INDEX i_mam_message_username_jid_id ON mam_message USING btree (user_id, remote_bare_jid, id);
CREATE INDEX i_mam_message_username_jid_origin_id ON mam_message USING btree (user_id, remote_bare_jid, origin_id);

-- remote_jid '' is the default behaviour.
CREATE TABLE mam_config (
    user_id integer NOT NULL,
    remote_jid varchar(250) NOT NULL,
    behaviour mam_behaviour NOT NULL,
    PRIMARY KEY (user_id, remote_jid)
);

CREATE TABLE mam_server_user (
    id serial UNIQUE PRIMARY KEY,
    server varchar(250) NOT NULL,
    user_name varchar(250) NOT NULL
);
CREATE UNIQUE INDEX i_mam_server_user_name ON mam_server_user USING btree (server, user_name);

CREATE TABLE mam_muc_message (
    id bigint NOT NULL,
    room_id integer NOT NULL,
    sender_id integer NOT NULL,
    nick_name varchar(250) NOT NULL,
    message bytea NOT NULL,
    search_body text,
    origin_id varchar,
    PRIMARY KEY (room_id, id)
);
CREATE INDEX i_mam_muc_message_sender_id ON mam_muc_message USING btree (sender_id);
CREATE INDEX i_mam_muc_message_room_id_sender_id_origin_id ON mam_muc_message USING btree (room_id, sender_id, origin_id);

CREATE TABLE offline_message (
    id serial UNIQUE PRIMARY KEY,
    timestamp bigint NOT NULL,
    expire bigint,
    server varchar(250) NOT NULL,
    username varchar(250) NOT NULL,
    from_jid varchar(250) NOT NULL,
    packet text NOT NULL,
    permanent_fields bytea
);
CREATE INDEX i_offline_message ON offline_message USING btree (server, username, id);

CREATE TABLE auth_token (
    owner text NOT NULL PRIMARY KEY,
    seq_no bigint NOT NULL
);

CREATE TABLE muc_light_rooms (
    id bigserial NOT NULL UNIQUE,
    luser varchar(250) NOT NULL,
    lserver varchar(250) NOT NULL,
    version varchar(20) NOT NULL,
    PRIMARY KEY (lserver, luser)
);

CREATE TABLE muc_rooms (
    id bigserial NOT NULL UNIQUE,
    muc_host varchar(250) NOT NULL,
    room_name varchar(250) NOT NULL,
    options json NOT NULL,
    PRIMARY KEY (muc_host, room_name)
);

-- aff: 1 owner, 2 member, 3 admin, 4 outcast, 5 none
CREATE TABLE muc_room_aff (
    room_id bigint NOT NULL REFERENCES muc_rooms (id),
    luser varchar(250) NOT NULL,
    lserver varchar(250) NOT NULL,
    resource varchar(250) NOT NULL,
    aff smallint NOT NULL
);
CREATE INDEX i_muc_room_aff_id ON muc_room_aff (room_id);

CREATE TABLE muc_registered (
    muc_host varchar(250) NOT NULL,
    luser varchar(250) NOT NULL,
    lserver varchar(250) NOT NULL,
    nick varchar(250) NOT NULL,
    PRIMARY KEY (muc_host, luser, lserver)
);

CREATE TABLE muc_light_occupants (
    room_id bigint NOT NULL REFERENCES muc_light_rooms (id),
    luser varchar(250) NOT NULL,
    lserver varchar(250) NOT NULL,
    aff smallint NOT NULL
);
CREATE INDEX i_muc_light_occupants_id ON muc_light_occupants (room_id);
CREATE INDEX i_muc_light_occupants_us ON muc_light_occupants (lserver, luser);

CREATE TABLE muc_light_config (
    room_id bigint NOT NULL REFERENCES muc_light_rooms (id),
    opt varchar(100) NOT NULL,
    val varchar(250) NOT NULL
);
CREATE INDEX i_muc_light_config ON muc_light_config (room_id);

CREATE TABLE muc_light_blocking (
    luser varchar(250) NOT NULL,
    lserver varchar(250) NOT NULL,
    what smallint NOT NULL,
    who varchar(500) NOT NULL
);
CREATE INDEX i_muc_light_blocking_su ON muc_light_blocking (lserver, luser);

CREATE TABLE inbox (
    luser varchar(250) NOT NULL,
    lserver varchar(250) NOT NULL,
    remote_bare_jid varchar(250) NOT NULL,
    msg_id varchar(250),
    box varchar(64) NOT NULL DEFAULT 'inbox',
    content bytea NOT NULL,
    timestamp bigint NOT NULL,
    muted_until bigint DEFAULT 0,
    unread_count integer NOT NULL,
    PRIMARY KEY (lserver, luser, remote_bare_jid)
);
CREATE INDEX i_inbox_timestamp ON inbox USING btree (lserver, luser, timestamp);
CREATE INDEX i_inbox_us_box ON inbox USING btree (lserver, luser, box);
CREATE INDEX i_inbox_box ON inbox (box) WHERE (box = 'bin');

CREATE TABLE pubsub_nodes (
    nidx bigserial PRIMARY KEY,
    p_key varchar(250) NOT NULL,
    name varchar(250) NOT NULL,
    type varchar(250) NOT NULL,
    owners json NOT NULL,
    options json NOT NULL
);
CREATE UNIQUE INDEX i_pubsub_nodes_key_name ON pubsub_nodes USING btree (p_key, name);

CREATE TABLE pubsub_node_collections (
    name varchar(250) NOT NULL,
    parent_name varchar(250) NOT NULL,
    PRIMARY KEY (name, parent_name)
);

CREATE TABLE pubsub_affiliations (
    nidx bigint NOT NULL,
    luser varchar(250) NOT NULL,
    lserver varchar(250) NOT NULL,
    aff smallint NOT NULL,
    PRIMARY KEY (luser, lserver, nidx)
);
CREATE INDEX i_pubsub_affiliations_nidx ON pubsub_affiliations (nidx);

CREATE TABLE pubsub_items (
    nidx bigint NOT NULL,
    itemid varchar(250) NOT NULL,
    created_luser varchar(250) NOT NULL,
    created_lserver varchar(250) NOT NULL,
    created_at bigint NOT NULL,
    modified_luser varchar(250) NOT NULL,
    modified_lserver varchar(250) NOT NULL,
    modified_lresource varchar(250) NOT NULL,
    modified_at bigint NOT NULL,
    publisher text,
    payload text NOT NULL,
    PRIMARY KEY (nidx, itemid)
);

CREATE TABLE pubsub_last_item (
    nidx bigint NOT NULL,
    itemid varchar(250) NOT NULL,
    created_luser varchar(250) NOT NULL,
    created_lserver varchar(250) NOT NULL,
    created_at bigint NOT NULL,
    payload text NOT NULL,
    PRIMARY KEY (nidx)
);
CREATE INDEX i_pubsub_items_lus_nidx ON pubsub_items (created_luser, created_lserver, nidx);
CREATE INDEX i_pubsub_items_nidx ON pubsub_items (nidx);

CREATE TABLE pubsub_subscriptions (
    nidx bigint NOT NULL,
    luser varchar(250) NOT NULL,
    lserver varchar(250) NOT NULL,
    lresource varchar(250) NOT NULL,
    type smallint NOT NULL,
    sub_id varchar(125) NOT NULL,
    options json NOT NULL
);
CREATE INDEX i_pubsub_subscriptions_lus_nidx ON pubsub_subscriptions (luser, lserver, nidx);
CREATE INDEX i_pubsub_subscriptions_nidx ON pubsub_subscriptions (nidx);

CREATE TABLE event_pusher_push_subscription (
    owner_jid varchar(250),
    node varchar(250),
    pubsub_jid varchar(250),
    form json NOT NULL,
    created_at bigint NOT NULL,
    PRIMARY KEY (owner_jid, node, pubsub_jid)
);
CREATE INDEX i_event_pusher_push_subscription ON event_pusher_push_subscription (owner_jid);

CREATE TABLE mongoose_cluster_id (
    k varchar(50) PRIMARY KEY,
    v text
);

-- chat markers: R received, D displayed, A acknowledged
CREATE TYPE chat_marker_type AS ENUM ('R', 'D', 'A');

CREATE TABLE smart_markers (
    lserver varchar(250) NOT NULL,
    luser varchar(250) NOT NULL,
    to_jid varchar(250) NOT NULL,
    thread varchar(250) NOT NULL,
    type chat_marker_type NOT NULL,
    msg_id varchar(250) NOT NULL,
    timestamp bigint NOT NULL,
    PRIMARY KEY (lserver, luser, to_jid, thread, type)
);
CREATE INDEX i_smart_markers ON smart_markers (to_jid, thread);

CREATE TABLE offline_markers (
    jid varchar(250) NOT NULL,
    thread varchar(250) NOT NULL,
    room varchar(250) NOT NULL,
    timestamp bigint NOT NULL,
    PRIMARY KEY (jid, thread, room)
);
CREATE INDEX i_offline_markers ON offline_markers (jid);

CREATE TABLE domain_admins (
    domain varchar(250) NOT NULL,
    pass_details text NOT NULL,
    PRIMARY KEY (domain)
);

CREATE TABLE domain_settings (
    id bigserial NOT NULL UNIQUE,
    domain varchar(250) NOT NULL,
    host_type varchar(250) NOT NULL,
    status smallint NOT NULL DEFAULT 1,
    PRIMARY KEY (domain)
);

CREATE TABLE domain_events (
    id bigserial NOT NULL,
    domain varchar(250) NOT NULL,
    PRIMARY KEY (id)
);
CREATE INDEX i_domain_events_domain ON domain_events (domain);

CREATE TABLE discovery_nodes (
    cluster_name varchar(250) NOT NULL,
    node_name varchar(250) NOT NULL,
    node_num integer NOT NULL,
    address varchar(250) NOT NULL DEFAULT '',
    updated_timestamp bigint NOT NULL,
    PRIMARY KEY (node_name)
);
CREATE UNIQUE INDEX i_discovery_nodes_node_num ON discovery_nodes USING btree (cluster_name, node_num);

CREATE TABLE caps (
    node varchar(250) NOT NULL,
    sub_node varchar(250) NOT NULL,
    features text NOT NULL,
    PRIMARY KEY (node, sub_node)
);

CREATE TABLE fast_auth_token (
    server varchar(250) NOT NULL,
    username varchar(250) NOT NULL,
    user_agent_id varchar(250) NOT NULL,
    current_token varchar(250),
    current_expire bigint,
    current_count integer,
    current_mech_id smallint,
    new_token varchar(250),
    new_expire bigint,
    new_count integer,
    new_mech_id smallint,
    PRIMARY KEY (server, username, user_agent_id)
);
