%% Hard cases for the export tests, written into a running ejabberd 23.01
%% node (after mimmigrate_populate): text with quotes, backslashes,
%% non-ASCII and astral-plane characters, empty and huge vCards, a
%% 1000-item roster, privacy lists of every item type, rooms with
%% affiliations and subscribers, offline messages of every stanza kind,
%% groupchat archives, pubsub nodes with items.
%%
%%   mimmigrate_hard:run(Host) -> ok
%%   mimmigrate_hard:nul(Host) -> ok   (records PostgreSQL cannot store)
-module(mimmigrate_hard).
-export([run/1, nul/1]).

-define(TRICKY, <<"quote ' double \" back \\ slash; tab\there\nnewline <&> é ☕ 😀 𝄞 end"/utf8>>).

run(Host) ->
    Muc = <<"conference.", Host/binary>>,
    T = ?TRICKY,
    ok = ejabberd_auth:try_register(<<"hard">>, Host, <<"pw ' \" \\ x">>),
    ok = ejabberd_auth:try_register(<<"empty">>, Host, <<"x">>),
    ok = ejabberd_auth:try_register(<<"big">>, Host, <<"x">>),
    %% vCards: tricky text, empty, huge (a 1 MB photo).
    ok = mod_vcard:set_vcard(<<"hard">>, Host,
           {xmlel, <<"vCard">>, [{<<"xmlns">>, <<"vcard-temp">>}],
            [{xmlel, <<"FN">>, [], [{xmlcdata, T}]},
             {xmlel, <<"NICKNAME">>, [{<<"x-attr">>, T}], [{xmlcdata, <<"Ünïcödé"/utf8>>}]},
             {xmlel, <<"DESC">>, [], [{xmlcdata, <<"a">>}, {xmlcdata, <<"b">>}]}]}),
    ok = mod_vcard:set_vcard(<<"empty">>, Host, {xmlel, <<"vCard">>, [{<<"xmlns">>, <<"vcard-temp">>}], []}),
    Photo = base64:encode(crypto:strong_rand_bytes(750000)),
    ok = mod_vcard:set_vcard(<<"big">>, Host,
           {xmlel, <<"vCard">>, [{<<"xmlns">>, <<"vcard-temp">>}],
            [{xmlel, <<"FN">>, [], [{xmlcdata, <<"Big">>}]},
             {xmlel, <<"PHOTO">>, [], [{xmlel, <<"TYPE">>, [], [{xmlcdata, <<"image/png">>}]},
                                       {xmlel, <<"BINVAL">>, [], [{xmlcdata, Photo}]}]}]}),
    %% A 1000-item roster with tricky nicks and groups.
    [ok = mod_admin_extra:add_rosteritem(<<"big">>, Host, <<"c", (integer_to_binary(I))/binary>>, <<"other.example">>,
                                         <<"Nick ", T/binary>>, <<"G ' \\ 😀;Other"/utf8>>, <<"to">>)
     || I <- lists:seq(1, 1000)],
    %% Privacy lists with every item type, action and match flag.
    Item = fun(Type, Value, Action, Order, Flags) ->
                   {listitem, Type, Value, Action, Order, Flags == [],
                    lists:member(iq, Flags), lists:member(message, Flags),
                    lists:member(presence_in, Flags), lists:member(presence_out, Flags)}
           end,
    ok = mnesia:dirty_write(
           {privacy, {<<"hard">>, Host}, <<"second">>,
            [{<<"every ' kind \\ 😀"/utf8>>,
              [Item(jid, {<<"spam">>, <<"spam.example">>, <<"Res">>}, deny, 1, [message]),
               Item(group, <<"G ' \\ x">>, allow, 2, [iq, presence_in]),
               Item(subscription, none, deny, 3, [presence_out]),
               Item(subscription, both, allow, 4, []),
               Item(subscription, from, deny, 5, []),
               Item(subscription, to, deny, 6, []),
               Item(none, none, allow, 7, [])]},
             {<<"second">>, [Item(jid, {<<>>, <<"y.example">>, <<>>}, allow, 10, [])]}]}),
    %% A room with every affiliation and two subscribers.
    ok = mod_muc_admin:create_room_with_opts(<<"hardroom">>, Muc, Host,
           [{<<"persistent">>, <<"true">>}, {<<"title">>, T}, {<<"allow_subscription">>, <<"true">>},
            {<<"mam">>, <<"true">>}]),
    [ok = mod_muc_admin:set_room_affiliation(<<"hardroom">>, Muc, <<J/binary, "@", Host/binary>>, A)
     || {J, A} <- [{<<"user1">>, <<"owner">>}, {<<"user2">>, <<"admin">>}, {<<"user3">>, <<"member">>},
                   {<<"user4">>, <<"outcast">>}]],
    [{ok, _} = subscribe(<<J/binary, "@", Host/binary>>, N, <<"hardroom@", Muc/binary>>)
     || {J, N} <- [{<<"user5">>, <<"Nick 5">>}, {<<"hard">>, T}]],
    %% Offline messages of every kind, through the router.
    To = <<"hard@", Host/binary>>,
    From = <<"user1@", Host/binary, "/res">>,
    route(From, To, {xmlel, <<"message">>, [{<<"type">>, <<"chat">>}, {<<"id">>, <<"m1">>}, {<<"xml:lang">>, <<"en">>}],
                     [{xmlel, <<"body">>, [], [{xmlcdata, T}]},
                      {xmlel, <<"subject">>, [], [{xmlcdata, <<"Subj">>}]},
                      {xmlel, <<"thread">>, [{<<"parent">>, <<"p1">>}], [{xmlcdata, <<"th1">>}]},
                      {xmlel, <<"html">>, [{<<"xmlns">>, <<"http://jabber.org/protocol/xhtml-im">>}],
                       [{xmlel, <<"body">>, [{<<"xmlns">>, <<"http://www.w3.org/1999/xhtml">>}], [{xmlcdata, <<"<b>">>}]}]},
                      {xmlel, <<"body">>, [{<<"xml:lang">>, <<"de">>}], [{xmlcdata, <<"Grüße"/utf8>>}]}]}),
    route(From, To, {xmlel, <<"message">>, [], [{xmlel, <<"body">>, [], [{xmlcdata, <<"normal type">>}]}]}),
    route(<<"stranger@other.example">>, To, {xmlel, <<"presence">>, [{<<"type">>, <<"subscribe">>}],
                     [{xmlel, <<"status">>, [], [{xmlcdata, <<"let me in">>}]}]}),
    wait_offline({<<"hard">>, Host}, 3, 100),
    %% Groupchat archive rows of the room.
    [begin
         Us = erlang:system_time(microsecond) - K * 1000000,
         Ts = {Us div 1000000000000, Us div 1000000 rem 1000000, Us rem 1000000},
         Pkt = {xmlel, <<"message">>, [{<<"type">>, <<"groupchat">>}],
                [{xmlel, <<"body">>, [], [{xmlcdata, <<"group ", T/binary>>}]}]},
         ok = mnesia:dirty_write({archive_msg, {<<"hardroom">>, Muc}, integer_to_binary(Us), Ts,
                                  {<<"hardroom">>, Muc, <<"Nick 5">>}, {<<"hardroom">>, Muc, <<>>}, Pkt,
                                  <<"Nick 5">>, groupchat})
     end || K <- lists:seq(1, 5)],
    ok = mnesia:dirty_write({archive_prefs, {<<"hard">>, Host}, always,
                             [{<<"a">>, Host, <<>>}], [{<<"b">>, <<"x.example">>, <<"r">>}]}),
    %% A push session (no publish options).
    ok = mnesia:dirty_write({push_session, {<<"hard">>, Host}, {1700, 1, 2}, {<<>>, <<"push.example">>, <<>>},
                             <<"node ' \\ x">>, undefined}),
    %% A roster version and last activity with tricky status.
    ok = mnesia:dirty_write({roster_version, {<<"hard">>, Host}, T}),
    ok = mod_admin_extra:set_last(<<"hard">>, Host, 1234567890, T),
    %% Pubsub: a node on the service with options and items.
    PS = <<"pubsub.", Host/binary>>,
    Owner = jid:make(<<"hard">>, Host, <<>>),
    {result, _} = mod_pubsub:create_node(PS, Host, <<"news">>, Owner, <<"flat">>),
    [{result, _} = mod_pubsub:publish_item(PS, Host, <<"news">>, Owner, <<"item", (integer_to_binary(I))/binary>>,
                                           [{xmlel, <<"entry">>, [{<<"xmlns">>, <<"urn:x">>}], [{xmlcdata, T}]}])
     || I <- lists:seq(1, 3)],
    ok.

%% Records with NUL bytes: PostgreSQL cannot store them.
nul(Host) ->
    ok = ejabberd_auth:try_register(<<"nul">>, Host, <<"x">>),
    ok = mnesia:dirty_write({vcard, {<<"nul">>, Host},
                             {xmlel, <<"vCard">>, [{<<"xmlns">>, <<"vcard-temp">>}],
                              [{xmlel, <<"FN">>, [], [{xmlcdata, <<"nul", 0, "byte">>}]}]}}),
    ok = mnesia:dirty_write({last_activity, {<<"nul">>, Host}, 1, <<"st", 0, "atus">>}),
    %% A control character XML 1.0 forbids (what a binary built without
    %% /utf8 makes of Cyrillic text): ejabberd stores it in Mnesia, but no
    %% XML parser reads it back from SQL.
    ok = mnesia:dirty_write({private_storage, {<<"nul">>, Host, <<"ns:ctl">>},
                             {xmlel, <<"x">>, [{<<"xmlns">>, <<"ns:ctl">>}], [{xmlcdata, <<31, "@825B">>}]}}),
    ok.

subscribe(Jid, Nick, Room) ->
    case mod_muc_admin:subscribe_room(Jid, Nick, Room, <<"urn:xmpp:mucsub:nodes:messages,urn:xmpp:mucsub:nodes:affiliations">>) of
        L when is_list(L) -> {ok, L};
        Other -> Other
    end.

route(From, To, El) ->
    Pkt = xmpp:decode(El, <<"jabber:client">>, []),
    ejabberd_router:route(xmpp:set_from_to(Pkt, jid:decode(From), jid:decode(To))).

wait_offline(_US, _Want, 0) -> timeout;
wait_offline(US, Want, Tries) ->
    case length(mnesia:dirty_read(offline_msg, US)) of
        N when N >= Want -> ok;
        _ -> timer:sleep(100), wait_offline(US, Want, Tries - 1)
    end.

ok_or_true(R) -> R =:= ok orelse R =:= true.
