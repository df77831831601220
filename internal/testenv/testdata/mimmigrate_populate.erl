%% Fills a running ejabberd 23.01 node with realistic data for mimmigrate's
%% tests and demo. Loaded into the node over RPC and run there:
%%
%%   mimmigrate_populate:run(Host, #{users => 3000, ...}) -> [{Table, Size}]
%%
%% The first api_users users go through ejabberd's own APIs (registration,
%% roster, vCard, private storage, privacy, MUC, shared roster, messages), so
%% the records have exactly the shapes ejabberd writes. The rest are copies
%% of those records with other names written with mnesia:dirty_write, which is
%% what makes thousands of users affordable in a test.
-module(mimmigrate_populate).
-export([run/2]).

run(Host, Opts) ->
    N = maps:get(users, Opts, 3000),
    Api = min(N, maps:get(api_users, Opts, 100)),
    Contacts = maps:get(contacts, Opts, 5),
    Rooms = maps:get(rooms, Opts, 30),
    Muc = <<"conference.", Host/binary>>,
    Users = [user(I) || I <- lists:seq(1, N)],
    {ApiUsers, BulkUsers} = lists:split(Api, Users),

    %% Accounts: SCRAM through the API; every 20th bulk user keeps a legacy
    %% plain-text password, as old installations do.
    [ok = ejabberd_auth:try_register(U, Host, password(U)) || U <- ApiUsers],
    [_ | _] = ScramTmpl = mnesia:dirty_read(passwd, {hd(ApiUsers), Host}),
    lists:foreach(
      fun({I, U}) when I rem 20 =:= 0 -> ok = mnesia:dirty_write({passwd, {U, Host}, password(U)});
         ({_, U}) -> ok = mnesia:dirty_write(setelement(2, hd(ScramTmpl), {U, Host}))
      end, lists:zip(lists:seq(1, length(BulkUsers)), BulkUsers)),

    %% Rosters: contacts are the next users round the ring, two groups each.
    lists:foreach(
      fun(U) ->
              [ok = mod_admin_extra:add_rosteritem(U, Host, C, Host, nick(C), <<"Friends;Work">>, <<"both">>)
               || C <- contacts(U, Contacts, N)]
      end, ApiUsers),
    [RosterTmpl] = mnesia:dirty_read(roster, {hd(ApiUsers), Host, {hd(contacts(hd(ApiUsers), 1, N)), Host, <<>>}}),
    lists:foreach(
      fun(U) ->
              [ok = mnesia:dirty_write(
                      setelement(5, setelement(4, setelement(3, setelement(2, RosterTmpl,
                          {U, Host, {C, Host, <<>>}}), {U, Host}), {C, Host, <<>>}), nick(C)))
               || C <- contacts(U, Contacts, N)],
              ok = mnesia:dirty_write({roster_version, {U, Host}, integer_to_binary(erlang:phash2(U))})
      end, BulkUsers),

    %% vCards for every third user (they also fill vcard_search).
    [ok = mod_vcard:set_vcard(U, Host, vcard(U, Host)) || U <- every(3, Users)],

    %% Private storage (bookmarks) for every third user.
    Bookmarks = <<"<storage xmlns='storage:bookmarks'><conference jid='room1@", Muc/binary,
                  "' autojoin='true' name='Room 1'><nick>n</nick></conference></storage>">>,
    [ok = mod_admin_extra:private_set(U, Host, Bookmarks) || U <- every(3, Users)],

    %% Last activity for everyone.
    Now = erlang:system_time(second),
    [ok = mod_admin_extra:set_last(U, Host, Now - erlang:phash2(U, 86400 * 30), <<"Gone fishing">>)
     || U <- Users],

    %% Privacy lists for a few.
    Privacy = <<"<query xmlns='jabber:iq:privacy'><list name='blocked'>"
                "<item type='jid' value='spam@spam.example' action='deny' order='1'/>"
                "<item action='allow' order='2'/></list></query>">>,
    [true = ok_or_true(mod_admin_extra:privacy_set(U, Host, Privacy)) || U <- lists:sublist(ApiUsers, 30)],
    [true = ok_or_true(mod_privacy:set_default_list(U, Host, <<"blocked">>)) || U <- lists:sublist(ApiUsers, 10)],

    %% Shared roster groups.
    [begin
         true = ok_or_true(mod_admin_extra:srg_create(G, Host, G, <<"Group ", G/binary>>, G)),
         [true = ok_or_true(mod_admin_extra:srg_user_add(U, Host, G, Host)) || U <- lists:sublist(Users, 20)]
     end || G <- [<<"staff">>, <<"ops">>]],

    %% MUC rooms with members, and registered nicks.
    lists:foreach(
      fun(R) ->
              Room = <<"room", (integer_to_binary(R))/binary>>,
              ok = mod_muc_admin:create_room_with_opts(
                     Room, Muc, Host,
                     [{<<"persistent">>, <<"true">>}, {<<"title">>, <<"Room ", Room/binary>>},
                      {<<"description">>, <<"Talk about ", Room/binary, " — café ☕"/utf8>>},
                      {<<"members_only">>, <<"true">>}, {<<"mam">>, <<"true">>}]),
              [ok = mod_muc_admin:set_room_affiliation(Room, Muc, <<U/binary, "@", Host/binary>>, <<"member">>)
               || U <- lists:sublist(Users, (R * 7) rem max(1, N - 10) + 1, 5)]
      end, lists:seq(1, Rooms)),
    [ok = mnesia:dirty_write({muc_registered, {{U, Host}, Muc}, nick(U)}) || U <- every(15, Users)],

    %% Offline messages (and their MAM copies): two for every fourth user.
    [begin
         From = <<(hd(contacts(U, 1, N)))/binary, "@", Host/binary>>,
         To = <<U/binary, "@", Host/binary>>,
         mod_admin_extra:send_message(<<"chat">>, From, To, <<>>, <<"Hello ", U/binary, " 1">>),
         mod_admin_extra:send_message(<<"chat">>, From, To, <<>>, <<"Привет "/utf8, U/binary, " 2">>)
     end || U <- every(4, Users)],

    %% Message archive (mod_mam's Mnesia records): a short chat history for
    %% every fourth user, both directions, microsecond ids as MAM uses them.
    [begin
         Peer = hd(contacts(U, 1, N)),
         [begin
              Us = erlang:system_time(microsecond) - K * 1000000,
              Ts = {Us div 1000000000000, Us div 1000000 rem 1000000, Us rem 1000000},
              Body = <<"archived ", (integer_to_binary(K))/binary, " <&> ", U/binary>>,
              Pkt = {xmlel, <<"message">>,
                     [{<<"from">>, <<Peer/binary, "@", Host/binary, "/phone">>},
                      {<<"to">>, <<U/binary, "@", Host/binary>>}, {<<"type">>, <<"chat">>}],
                     [{xmlel, <<"body">>, [], [{xmlcdata, Body}]}]},
              ok = mnesia:dirty_write({archive_msg, {U, Host}, integer_to_binary(Us), Ts,
                                       {Peer, Host, <<"phone">>}, {Peer, Host, <<>>}, Pkt, <<>>, chat})
          end || K <- lists:seq(1, 4)]
     end || U <- every(4, Users)],
    [ok = mnesia:dirty_write({archive_prefs, {U, Host}, roster, [], []}) || U <- every(10, Users)],

    %% Message of the day.
    ok = mnesia:dirty_write({motd, Host, {xmlel, <<"message">>, [], [{xmlel, <<"body">>, [],
                                                                      [{xmlcdata, <<"Maintenance on Sunday">>}]}]}}),
    [ok = mnesia:dirty_write({motd_users, {U, Host}, []}) || U <- lists:sublist(Users, 50)],

    wait_offline(Host, every(4, Users), 200),
    [{T, mnesia:table_info(T, size)} || T <- mnesia:system_info(tables), T =/= schema].

%% Messages are routed asynchronously: wait until they are stored.
wait_offline(_Host, _Users, 0) -> timeout;
wait_offline(Host, Users, Tries) ->
    Want = 2 * length(Users),
    case mnesia:table_info(offline_msg, size) of
        Got when Got >= Want -> ok;
        _ -> timer:sleep(100), wait_offline(Host, Users, Tries - 1)
    end.

ok_or_true(R) -> R =:= ok orelse R =:= true.

user(I) -> <<"user", (integer_to_binary(I))/binary>>.
password(U) -> <<"pw-", U/binary>>.
nick(U) -> <<"Nick ", U/binary>>.

contacts(U, K, N) ->
    <<"user", I/binary>> = U,
    Idx = binary_to_integer(I),
    [user((Idx + J - 1) rem N + 1) || J <- lists:seq(1, K), (Idx + J - 1) rem N + 1 =/= Idx].

every(K, L) -> [X || {I, X} <- lists:zip(lists:seq(1, length(L)), L), I rem K =:= 1].

vcard(U, Host) ->
    Text = fun(Name, V) -> {xmlel, Name, [], [{xmlcdata, V}]} end,
    {xmlel, <<"vCard">>, [{<<"xmlns">>, <<"vcard-temp">>}],
     [Text(<<"FN">>, <<"Full Name ", U/binary>>),
      Text(<<"NICKNAME">>, nick(U)),
      {xmlel, <<"N">>, [], [Text(<<"FAMILY">>, <<"Müller"/utf8>>), Text(<<"GIVEN">>, U)]},
      {xmlel, <<"EMAIL">>, [], [{xmlel, <<"INTERNET">>, [], []}, Text(<<"USERID">>, <<U/binary, "@", Host/binary>>)]},
      Text(<<"BDAY">>, <<"1980-01-01">>),
      {xmlel, <<"ADR">>, [], [Text(<<"CTRY">>, <<"DE">>), Text(<<"LOCALITY">>, <<"Berlin">>)]},
      {xmlel, <<"ORG">>, [], [Text(<<"ORGNAME">>, <<"Example & Co <ops>">>)]},
      {xmlel, <<"PHOTO">>, [], [Text(<<"TYPE">>, <<"image/png">>),
                                Text(<<"BINVAL">>, base64:encode(crypto:strong_rand_bytes(600)))]}]}.
