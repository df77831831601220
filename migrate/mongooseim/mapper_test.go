package mongooseim

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/mimmigrate/mimmigrate/internal/samples"
	"github.com/mimmigrate/mimmigrate/migrate/schema"
)

// mapperCases: what the mapper of each table makes of the sample record
// of internal/samples (its rows, or with want "delete" the operations
// that delete the record's key), in order: one mapping per schema is
// shared by the cases, as one export shares it. Compressed exml terms are
// compared as <exml> (they are checked by real Erlang in the export's
// oracle tests).
var mapperCases = []struct {
	schema, table string
	ops           []string
	what          string // "", "delete", or "reject: " and the reason
}{
	{"mongooseim", "archive_msg", []string{"mam_server_user [1 example.org alice]", "mam_message [435200000256000512 1 bob/phone bob phone I <exml> hi <nil> false]"}, ""},
	{"mongooseim", "archive_msg", []string{"DELETE FROM \"mam_message\" WHERE \"user_id\" IN (SELECT \"id\" FROM \"mam_server_user\" WHERE \"server\" = $1 AND \"user_name\" = $2) [example.org alice]", "DELETE FROM \"mam_muc_message\" WHERE \"room_id\" IN (SELECT \"id\" FROM \"mam_server_user\" WHERE \"server\" = $1 AND \"user_name\" = $2) [example.org alice]"}, "delete"},
	{"mongooseim", "archive_prefs", []string{"mam_config [1  R]", "mam_config [1 bob@example.org A]"}, ""},
	{"mongooseim", "archive_prefs", []string{"DELETE FROM \"mam_config\" WHERE \"user_id\" IN (SELECT \"id\" FROM \"mam_server_user\" WHERE \"server\" = $1 AND \"user_name\" = $2) [example.org alice]"}, "delete"},
	{"mongooseim", "last_activity", []string{"last [example.org alice 1700000000 gone]"}, ""},
	{"mongooseim", "last_activity", []string{"DELETE FROM \"last\" WHERE \"server\" = $1 AND \"username\" = $2 [example.org alice]"}, "delete"},
	{"mongooseim", "motd", nil, "reject: no table for it in the mongooseim schema: MongooseIM has no message of the day module"},
	{"mongooseim", "motd_users", nil, "reject: no table for it in the mongooseim schema: MongooseIM has no message of the day module"},
	{"mongooseim", "mqtt_pub", nil, "reject: no table for it in the mongooseim schema: MongooseIM has no MQTT module"},
	{"mongooseim", "muc_registered", []string{"muc_registered [conference.example.org alice example.org ally]"}, ""},
	{"mongooseim", "muc_registered", []string{"DELETE FROM \"muc_registered\" WHERE \"muc_host\" = $1 AND \"luser\" = $2 AND \"lserver\" = $3 [conference.example.org alice example.org]"}, "delete"},
	{"mongooseim", "muc_room", []string{"muc_rooms [1 conference.example.org lobby {\"title\":\"The lobby\",\"persistent\":true}]", "muc_room_aff [1 alice example.org  1]"}, ""},
	{"mongooseim", "muc_room", []string{"DELETE FROM \"muc_room_aff\" WHERE \"room_id\" IN (SELECT \"id\" FROM \"muc_rooms\" WHERE \"muc_host\" = $1 AND \"room_name\" = $2) [conference.example.org lobby]", "DELETE FROM \"muc_rooms\" WHERE \"muc_host\" = $1 AND \"room_name\" = $2 [conference.example.org lobby]"}, "delete"},
	{"mongooseim", "oauth_client", nil, "reject: no table for it in the mongooseim schema: MongooseIM has no OAuth module"},
	{"mongooseim", "oauth_token", nil, "reject: no table for it in the mongooseim schema: MongooseIM has no OAuth module"},
	{"mongooseim", "offline_msg", []string{"offline_message [1700000001000002 <nil> example.org alice bob@example.org/phone <message type='chat' id='m1' from='bob@example.org/phone' to='alice@example.org'><body>hello &lt;you&gt;</body></message> <nil>]"}, ""},
	{"mongooseim", "offline_msg", []string{"DELETE FROM \"offline_message\" WHERE \"server\" = $1 AND \"username\" = $2 [example.org alice]"}, "delete"},
	{"mongooseim", "passwd", []string{"users [alice example.org  ==MULTI_SCRAM==,4096,==SHA256==c2FsdA==|c3RvcmVk|c2VydmVy]"}, ""},
	{"mongooseim", "passwd", []string{"DELETE FROM \"users\" WHERE \"server\" = $1 AND \"username\" = $2 [example.org alice]"}, "delete"},
	{"mongooseim", "privacy", []string{"privacy_default_list [example.org alice main]", "privacy_list [example.org alice main 1]", "privacy_list_data [1 j eve@example.org d 1 true false false false false]", "privacy_list_data [1 n  a 2 true false false false false]", "privacy_list [example.org alice other 2]", "privacy_list_data [2 g Work a 1 true false false false false]"}, ""},
	{"mongooseim", "privacy", []string{"DELETE FROM \"privacy_list_data\" WHERE \"id\" IN (SELECT \"id\" FROM \"privacy_list\" WHERE \"server\" = $1 AND \"username\" = $2) [example.org alice]", "DELETE FROM \"privacy_list\" WHERE \"server\" = $1 AND \"username\" = $2 [example.org alice]", "DELETE FROM \"privacy_default_list\" WHERE \"server\" = $1 AND \"username\" = $2 [example.org alice]"}, "delete"},
	{"mongooseim", "private_storage", []string{"private_storage [example.org alice storage:bookmarks <storage xmlns='storage:bookmarks'/>]"}, ""},
	{"mongooseim", "private_storage", []string{"DELETE FROM \"private_storage\" WHERE \"server\" = $1 AND \"username\" = $2 AND \"namespace\" = $3 [example.org alice storage:bookmarks]"}, "delete"},
	{"mongooseim", "pubsub_item", []string{"pubsub_items [7 item1 alice example.org 1700000001000002 alice example.org home 1700000001000003 alice@example.org/home <item><entry xmlns='http://www.w3.org/2005/Atom'/></item>]"}, ""},
	{"mongooseim", "pubsub_item", []string{"DELETE FROM \"pubsub_items\" WHERE \"nidx\" = $1 AND \"itemid\" = $2 [7 item1]"}, "delete"},
	{"mongooseim", "pubsub_node", []string{"pubsub_nodes [7 pubsub.example.org news flat [\"alice@example.org\"] {\"max_items\":10,\"access_model\":\"open\"}]"}, ""},
	{"mongooseim", "pubsub_node", []string{"DELETE FROM \"pubsub_affiliations\" WHERE \"nidx\" IN (SELECT \"nidx\" FROM \"pubsub_nodes\" WHERE \"p_key\" = $1 AND \"name\" = $2) [pubsub.example.org news]", "DELETE FROM \"pubsub_subscriptions\" WHERE \"nidx\" IN (SELECT \"nidx\" FROM \"pubsub_nodes\" WHERE \"p_key\" = $1 AND \"name\" = $2) [pubsub.example.org news]", "DELETE FROM \"pubsub_items\" WHERE \"nidx\" IN (SELECT \"nidx\" FROM \"pubsub_nodes\" WHERE \"p_key\" = $1 AND \"name\" = $2) [pubsub.example.org news]", "DELETE FROM \"pubsub_node_collections\" WHERE \"name\" = $1 [news]", "DELETE FROM \"pubsub_nodes\" WHERE \"p_key\" = $1 AND \"name\" = $2 [pubsub.example.org news]"}, "delete"},
	{"mongooseim", "pubsub_state", []string{"pubsub_affiliations [7 alice example.org 1]"}, ""},
	{"mongooseim", "pubsub_state", []string{"DELETE FROM \"pubsub_subscriptions\" WHERE \"nidx\" = $1 AND \"luser\" = $2 AND \"lserver\" = $3 AND \"lresource\" = $4 [7 alice example.org ]", "DELETE FROM \"pubsub_affiliations\" WHERE \"nidx\" = $1 AND \"luser\" = $2 AND \"lserver\" = $3 [7 alice example.org]"}, "delete"},
	{"mongooseim", "push_session", nil, "reject: no table for it in the mongooseim schema: MongooseIM's push subscriptions (event_pusher_push_subscription) take a different form and are re-registered by clients"},
	{"mongooseim", "roster", []string{"rosterusers [example.org alice bob@example.org Bob B N ]", "rostergroups [example.org alice bob@example.org Friends]", "rostergroups [example.org alice bob@example.org Work]"}, ""},
	{"mongooseim", "roster", []string{"DELETE FROM \"rostergroups\" WHERE \"server\" = $1 AND \"username\" = $2 AND \"jid\" = $3 [example.org alice bob@example.org]", "DELETE FROM \"rosterusers\" WHERE \"server\" = $1 AND \"username\" = $2 AND \"jid\" = $3 [example.org alice bob@example.org]"}, "delete"},
	{"mongooseim", "roster_version", []string{"roster_version [example.org alice v1]"}, ""},
	{"mongooseim", "roster_version", []string{"DELETE FROM \"roster_version\" WHERE \"server\" = $1 AND \"username\" = $2 [example.org alice]"}, "delete"},
	{"mongooseim", "sr_group", nil, "reject: no table for it in the mongooseim schema: MongooseIM's shared roster is LDAP only"},
	{"mongooseim", "sr_user", nil, "reject: no table for it in the mongooseim schema: MongooseIM's shared roster is LDAP only"},
	{"mongooseim", "vcard", []string{"vcard [alice example.org <vCard xmlns='vcard-temp'><FN>Alice A</FN></vCard>]"}, ""},
	{"mongooseim", "vcard", []string{"DELETE FROM \"vcard\" WHERE \"server\" = $1 AND \"username\" = $2 [example.org alice]"}, "delete"},
	{"mongooseim", "vcard_search", []string{"vcard_search [Alice alice example.org Alice A alice a Alice A alice a Alice A alice a Alice A alice a Alice A alice a Alice A alice a Alice A alice a Alice A alice a Alice A alice a Alice A alice a Alice A alice a]"}, ""},
	{"mongooseim", "vcard_search", []string{"DELETE FROM \"vcard_search\" WHERE \"server\" = $1 AND \"lusername\" = $2 [example.org alice]"}, "delete"},
}

var exmlBytes = regexp.MustCompile(`\[131 80 [0-9 ]+\]`)

func TestMapperTable(t *testing.T) {
	schemas := map[string]schema.Schema{"mongooseim": Schema{}}
	recs := samples.Records()
	mappings := map[string]schema.Mapping{}
	for name, sc := range schemas {
		m := sc.NewMapping(schema.NewScope(nil, []string{samples.Host}, nil))
		m.Note("pubsub_node", recs["pubsub_node"])
		mappings[name] = m
	}
	for _, c := range mapperCases {
		m := mappings[c.schema].Mapper(c.table)
		if m == nil {
			t.Errorf("%s: no mapper for %s", c.schema, c.table)
			continue
		}
		var ops []schema.Op
		var err error
		if c.what == "delete" {
			ops, err = m.Delete(samples.Key(recs[c.table]))
		} else {
			ops, err = m.Map(recs[c.table])
		}
		if reason, ok := strings.CutPrefix(c.what, "reject: "); ok {
			var rj *schema.Reject
			if !errors.As(err, &rj) || rj.Reason != reason {
				t.Errorf("%s %s: %v, want the reject %q", c.schema, c.table, err, reason)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %s %s: %v", c.schema, c.table, c.what, err)
			continue
		}
		var got []string
		for _, op := range ops {
			got = append(got, exmlBytes.ReplaceAllString(op.String(), "<exml>"))
		}
		if fmt.Sprint(got) != fmt.Sprint(c.ops) {
			t.Errorf("%s %s %s:\n got  %q\n want %q", c.schema, c.table, c.what, got, c.ops)
		}
	}
}
