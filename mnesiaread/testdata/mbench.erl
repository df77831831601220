%% The large data set behind `go test -bench ReadVersusErlang` and the
%% Erlang side of that benchmark.
%%
%%   erl -noshell -sname N -mnesia dir '"D"' -run mbench gen SCALE
%%       A Mnesia directory shaped like an ejabberd 23.01 spool with
%%       disc_only_copies tables: at SCALE 1.0 about 1.4 GB of DETS and
%%       3.5 million records (passwd, roster, vcard, offline_msg as a bag,
%%       last_activity), plus a disc_copies table (private_storage, as a
%%       DCD). Mnesia creates the schema and the tables and writes the
%%       disc_copies table; after it has stopped, the DETS records go in
%%       through dets in batches (Mnesia opens the same files the same way)
%%       and each file is closed. Prints the record counts.
%%
%%   erl -noshell -run mbench count D [par]
%%       Erlang reading the same files, as a tool that does not start Mnesia
%%       would: each .DAT table opened read-only with dets and traversed with
%%       dets:foldl (every object decoded), the DCD read with disk_log.
%%       "par": one process per file. Prints {Table, Count} lines and the
%%       total.
-module(mbench).
-export([gen/1, count/1]).

-define(HOST, <<"bench.example.org">>).

gen([ScaleS]) ->
    guarded(fun() -> gen1(list_to_float(ScaleS)) end).

gen1(Scale) ->
    N = fun(X) -> max(1, round(X * Scale)) end,
    ok = mnesia:create_schema([node()]),
    ok = mnesia:start(),
    Me = [node()],
    Defs = [{passwd, set, [us, password]},
            {roster, set, [usj, us, jid, name, subscription, ask, groups, askmessage, xs]},
            {vcard, set, [us, vcard]},
            {offline_msg, bag, [us, timestamp, expire, from, to, packet]},
            {last_activity, set, [us, timestamp, status]}],
    [{atomic, ok} = mnesia:create_table(T, [{disc_only_copies, Me}, {type, Ty}, {attributes, A}])
     || {T, Ty, A} <- Defs],
    {atomic, ok} = mnesia:create_table(private_storage, [{disc_copies, Me}, {attributes, [usns, xml]}]),
    ok = mnesia:wait_for_tables([private_storage], 60000),
    [ok = mnesia:dirty_write(private(I)) || I <- lists:seq(1, N(100000))],
    %% A fresh disc copy is written as a whole DCD (ets2dcd).
    {atomic, ok} = mnesia:change_table_copy_type(private_storage, node(), ram_copies),
    {atomic, ok} = mnesia:change_table_copy_type(private_storage, node(), disc_copies),
    stopped = mnesia:stop(),
    %% The DETS tables last, written and closed by dets itself: a node
    %% halted right after mnesia:stop left large DETS files needing repair
    %% here (OTP 25.2.3); the benchmark wants clean files.
    Dir = mnesia:system_info(directory),
    rand:seed(exsss, {17, 4, 2026}),
    Users = N(1000000),
    Counts = [{passwd, bulk(Dir, passwd, set, Users, fun passwd/1)},
              {roster, bulk(Dir, roster, set, N(1000000), fun(I) -> roster(I, Users) end)},
              {vcard, bulk(Dir, vcard, set, N(200000), fun vcard/1)},
              {offline_msg, bulk(Dir, offline_msg, bag, N(300000), fun(I) -> offline(I, Users) end)},
              {last_activity, bulk(Dir, last_activity, set, Users, fun last/1)},
              {private_storage, N(100000)}],
    [io:format("~p ~p~n", [T, C]) || {T, C} <- lists:sort(Counts)],
    ok.

bulk(Dir, T, Type, Count, Make) ->
    F = filename:join(Dir, atom_to_list(T) ++ ".DAT"),
    {ok, T} = dets:open_file(T, [{file, F}, {keypos, 2}, {type, Type}]),
    bulk(T, 1, Count, Make),
    Size = dets:info(T, size),
    ok = dets:close(T),
    Size.

bulk(_, I, Count, _) when I > Count -> ok;
bulk(T, I, Count, Make) ->
    Last = min(Count, I + 999),
    ok = dets:insert(T, [Make(J) || J <- lists:seq(I, Last)]),
    bulk(T, Last + 1, Count, Make).

user(I) -> <<"user", (integer_to_binary(I))/binary>>.
us(I) -> {user(I), ?HOST}.
jid(I) -> {user(I), ?HOST, <<>>}.
b64(N) -> base64:encode(rand:bytes(N)).

passwd(I) when I rem 4 =:= 0 ->
    {passwd, us(I), b64(12)};
passwd(I) ->
    {passwd, us(I), {scram, b64(32), b64(32), b64(16), 4096, sha256}}.

roster(I, Users) ->
    U = (I rem Users) + 1,
    C = rand:uniform(Users),
    {roster, {user(U), ?HOST, jid(C)}, us(U), jid(C), user(C), both, none,
     [<<"Friends">> || I rem 3 =:= 0], <<>>, []}.

vcard(I) ->
    Photo = b64(1500 + rand:uniform(1500)),
    {vcard, us(I),
     {xmlel, <<"vCard">>, [{<<"xmlns">>, <<"vcard-temp">>}],
      [{xmlel, <<"FN">>, [], [{xmlcdata, <<"User ", (integer_to_binary(I))/binary>>}]},
       {xmlel, <<"NICKNAME">>, [], [{xmlcdata, user(I)}]},
       {xmlel, <<"EMAIL">>, [], [{xmlel, <<"USERID">>, [], [{xmlcdata, <<(user(I))/binary, "@mail.example.org">>}]}]},
       {xmlel, <<"PHOTO">>, [], [{xmlel, <<"TYPE">>, [], [{xmlcdata, <<"image/png">>}]},
                                 {xmlel, <<"BINVAL">>, [], [{xmlcdata, Photo}]}]}]}}.

offline(I, Users) ->
    To = (I rem (Users div 3 + 1)) + 1,
    From = rand:uniform(Users),
    Now = {1700 + I div 1000000, I rem 1000000, 0},
    Id = integer_to_binary(I),
    {offline_msg, us(To), Now, never, jid(From), jid(To),
     {xmlel, <<"message">>, [{<<"type">>, <<"chat">>}, {<<"id">>, Id},
                             {<<"to">>, <<(user(To))/binary, "@", ?HOST/binary>>}],
      [{xmlel, <<"body">>, [], [{xmlcdata, b64(150 + rand:uniform(200))}]},
       {xmlel, <<"delay">>, [{<<"xmlns">>, <<"urn:xmpp:delay">>}, {<<"from">>, ?HOST},
                             {<<"stamp">>, <<"2026-11-22T10:00:00Z">>}], []}]}}.

last(I) ->
    {last_activity, us(I), 1700000000 + I, <<"Gone fishing">>}.

private(I) ->
    {private_storage, {user(I), ?HOST, <<"storage:bookmarks">>},
     {xmlel, <<"storage">>, [{<<"xmlns">>, <<"storage:bookmarks">>}],
      [{xmlel, <<"conference">>, [{<<"jid">>, <<"room", (integer_to_binary(I))/binary, "@conference.", ?HOST/binary>>},
                                  {<<"autojoin">>, <<"true">>}], []}]}}.

count([Dir]) -> count([Dir, "seq"]);
count([Dir, Mode]) ->
    guarded(fun() -> count1(Dir, Mode) end).

count1(Dir, Mode) ->
    Files = [F || F <- filelib:wildcard(filename:join(Dir, "*.{DAT,DCD}")),
                  filename:basename(F) =/= "schema.DAT"],
    Count = fun(F) -> {filename:rootname(filename:basename(F)), count_file(F)} end,
    Counts = case Mode of
                 "par" ->
                     Self = self(),
                     Pids = [spawn_link(fun() -> Self ! {self(), Count(F)} end) || F <- Files],
                     [receive {P, R} -> R end || P <- Pids];
                 _ ->
                     [Count(F) || F <- Files]
             end,
    [io:format("~s ~p~n", [T, C]) || {T, C} <- lists:sort(Counts)],
    io:format("total ~p~n", [lists:sum([C || {_, C} <- Counts])]).

count_file(F) ->
    case filename:extension(F) of
        ".DAT" ->
            T = open_dets(F),
            C = dets:foldl(fun(_, N) -> N + 1 end, 0, T),
            ok = dets:close(T),
            C;
        ".DCD" ->
            {ok, L} = disk_log:open([{name, make_ref()}, {file, F}, {mode, read_only}, {repair, false}]),
            C = dcd(L, start, 0),
            ok = disk_log:close(L),
            C
    end.

%% The type must be given when it is not set; Mnesia's files say theirs.
open_dets(F) ->
    Opts = [{file, F}, {access, read}, {repair, false}, {keypos, 2}],
    case dets:open_file(make_ref(), Opts) of
        {ok, T} -> T;
        {error, {type_mismatch, _}} ->
            {ok, T} = dets:open_file(make_ref(), [{type, bag} | Opts]),
            T
    end.

dcd(L, Cont, N) ->
    case disk_log:chunk(L, Cont) of
        eof -> N;
        {Cont2, Terms} -> dcd(L, Cont2, N + length([T || T <- Terms, element(1, T) =/= log_header]));
        {Cont2, Terms, _Bad} -> dcd(L, Cont2, N + length([T || T <- Terms, element(1, T) =/= log_header]))
    end.

guarded(F) ->
    try F() of
        _ -> erlang:halt(0)
    catch C:E:S ->
        io:format(standard_error, "mbench: ~p:~p~n~p~n", [C, E, S]),
        erlang:halt(1)
    end.
