%% Live traffic for the sync tests: a process on an ejabberd node that
%% changes the data the way users and admins do, through ejabberd's own
%% code (password changes, registrations and account removals, roster adds
%% and removals, vCards, private storage, last activity, messages to
%% offline users that mod_offline and mod_mam store, offline storage
%% emptied as a login does, archive entries expired one by one), at a rate,
%% until stopped. stop/0 returns how many of each it did.
-module(mimmigrate_traffic).
-export([start/4, stop/0, ops/0]).

ops() -> [password, register, unregister, roster_add, roster_del, vcard, private, last, message, pop_offline, expire_archive].

%% start(Host, Users, OpsPerSecond, Tag): Users are user1..userUsers.
start(Host, Users, Rate, Tag) ->
    catch stop(),
    Pid = spawn(fun() ->
                        rand:seed(exsss, erlang:phash2({Tag, node()})),
                        loop(Host, Users, Rate, Tag, 0, #{}, [])
                end),
    register(mimmigrate_traffic, Pid),
    ok.

stop() ->
    Ref = make_ref(),
    mimmigrate_traffic ! {stop, self(), Ref},
    receive {Ref, Counts} -> Counts after 30000 -> timeout end.

loop(Host, Users, Rate, Tag, N, Counts, Registered) ->
    receive
        {stop, From, Ref} -> From ! {Ref, lists:sort(maps:to_list(Counts))}
    after 10 ->
        Per = max(1, Rate div 100),
        {Counts1, Reg1} = lists:foldl(fun(_, {C, R}) -> step(Host, Users, Tag, C, R) end,
                                      {Counts, Registered}, lists:seq(1, Per)),
        loop(Host, Users, Rate, Tag, N + Per, Counts1, Reg1)
    end.

step(Host, Users, Tag, Counts, Registered) ->
    Ops = ops(),
    Op = lists:nth(rand:uniform(length(Ops)), Ops),
    U = user(rand:uniform(Users)),
    {Ok, Reg} = try do(Op, Host, U, Users, Tag, Registered)
                catch _:_ -> {false, Registered}
                end,
    Key = case Ok of true -> Op; false -> {failed, Op} end,
    {maps:update_with(Key, fun(X) -> X + 1 end, 1, Counts), Reg}.

do(password, Host, U, _, Tag, R) ->
    %% The new password is written down for the test to log in with.
    Pw = <<"pw-", U/binary, "-", Tag/binary, "-", (integer_to_binary(rand:uniform(1000000)))/binary>>,
    ok = ejabberd_auth:set_password(U, Host, Pw),
    {true, R};
do(register, Host, _, _, Tag, R) ->
    U = <<"new-", Tag/binary, "-", (integer_to_binary(erlang:unique_integer([positive])))/binary>>,
    ok = ejabberd_auth:try_register(U, Host, <<"pw-", U/binary>>),
    {true, [U | R]};
do(unregister, Host, _, _, _, [U | R]) ->
    ok = ejabberd_auth:remove_user(U, Host),
    {true, R};
do(unregister, _, _, _, _, []) ->
    {false, []};
do(roster_add, Host, U, Users, _, R) ->
    C = user(rand:uniform(Users)),
    ok = mod_admin_extra:add_rosteritem(U, Host, C, Host, <<"Nick ", C/binary>>, <<"Live">>, <<"both">>),
    {true, R};
do(roster_del, Host, U, _, _, R) ->
    case mod_roster:get_roster(U, Host) of
        [] -> {false, R};
        Items ->
            It = lists:nth(rand:uniform(length(Items)), Items),
            {CU, CS, _} = element(4, It),
            ok = mod_admin_extra:delete_rosteritem(U, Host, CU, CS),
            {true, R}
    end;
do(vcard, Host, U, _, _, R) ->
    ok = mod_admin_extra:set_vcard(U, Host, <<"FN">>, <<"Live ", (integer_to_binary(rand:uniform(1000)))/binary>>),
    {true, R};
do(private, Host, U, _, _, R) ->
    X = integer_to_binary(rand:uniform(1000)),
    ok = mod_admin_extra:private_set(U, Host, <<"<storage xmlns='storage:rosternotes'><note jid='x@y'>", X/binary, "</note></storage>">>),
    {true, R};
do(last, Host, U, _, _, R) ->
    ok = mod_admin_extra:set_last(U, Host, erlang:system_time(second), <<"live">>),
    {true, R};
do(message, Host, U, Users, _, R) ->
    From = <<(user(rand:uniform(Users)))/binary, "@", Host/binary>>,
    mod_admin_extra:send_message(<<"chat">>, From, <<U/binary, "@", Host/binary>>, <<>>,
                                 <<"live ", (integer_to_binary(erlang:unique_integer([positive])))/binary>>),
    {true, R};
do(pop_offline, Host, U, _, _, R) ->
    %% What a login does: the user's offline messages are read and gone.
    mod_offline:remove_user(U, Host),
    {true, R};
do(expire_archive, Host, U, _, _, R) ->
    case mnesia:dirty_read(archive_msg, {U, Host}) of
        [] -> {false, R};
        [Oldest | _] -> ok = mnesia:dirty_delete_object(Oldest), {true, R}
    end.

user(I) -> <<"user", (integer_to_binary(I))/binary>>.
