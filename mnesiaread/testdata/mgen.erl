%% Test data for mnesiaread, made by real Mnesia, and the oracle that reads
%% it back the way Mnesia does at startup.
%%
%%   erl -sname N -mnesia dir '"D"' -s mgen ops      (and the other scenarios)
%%   erl -sname N -mnesia dir '"D"' -run mgen oracle OUT
%%
%% Scenarios leave the directory as a node would after a crash (halt without
%% stopping Mnesia): operations pending in LATEST.LOG and the table DCLs,
%% DETS files not closed. The oracle starts Mnesia on the directory (a copy:
%% starting Mnesia changes the files) with the same node name, waits for the
%% tables and writes {Table, Records} for every table with a disc copy here.
-module(mgen).
-export([ops/0, counters/0, big/0, clean/0, varied/0, inflight/0, inflight_appended/0, oracle/1, dump/1, restore/1, loadtext/1]).

-record(user, {id, name, tags}).

start() ->
    ok = mnesia:create_schema([node()]),
    ok = mnesia:start().

%% Before the crash, the live node's own view of its disc tables: the truth a
%% reader of the directory should find (truth.etf next to the directory).
crash() ->
    Tabs = [T || T <- mnesia:system_info(local_tables), T =/= schema,
                 mnesia:table_info(T, storage_type) =/= ram_copies],
    Truth = [{T, mnesia:dirty_match_object(T, mnesia:table_info(T, wild_pattern))} || T <- Tabs],
    Dir = filename:dirname(mnesia:system_info(directory)),
    ok = file:write_file(filename:join(Dir, "truth.etf"), term_to_binary(Truth)),
    ok = disk_log:sync(latest_log),
    timer:sleep(3500), %% DETS flushes its write cache after 3 s
    erlang:halt(0).

tables() ->
    N = [node()],
    {atomic, ok} = mnesia:create_table(user, [{disc_copies, N}, {attributes, record_info(fields, user)}]),
    {atomic, ok} = mnesia:create_table(dbag, [{disc_copies, N}, {type, bag}, {attributes, [k, v]}]),
    {atomic, ok} = mnesia:create_table(oset, [{disc_copies, N}, {type, ordered_set}, {attributes, [k, v]}]),
    {atomic, ok} = mnesia:create_table(dset, [{disc_only_copies, N}, {attributes, [k, v, w]}]),
    {atomic, ok} = mnesia:create_table(obag, [{disc_only_copies, N}, {type, bag}, {attributes, [k, v]}]),
    {atomic, ok} = mnesia:create_table(other_name, [{disc_copies, N}, {record_name, rec}, {attributes, [k, v]}]),
    {atomic, ok} = mnesia:create_table(ram, [{ram_copies, N}, {attributes, [k, v]}]),
    {atomic, ok} = mnesia:create_table(idx, [{disc_only_copies, N}, {index, [v]}, {attributes, [k, v]}]).

%% Every kind of operation, at every stage: in the DCD (dumped), in the DCL
%% (dumped again), and only in LATEST.LOG.
ops() ->
    start(),
    tables(),
    W = fun(T, R) -> ok = mnesia:dirty_write(T, R) end,
    [W(user, #user{id = I, name = <<"user", (integer_to_binary(I))/binary>>, tags = [a, {b, I}]}) || I <- lists:seq(1, 300)],
    [W(dbag, {dbag, I rem 7, {v, I}}) || I <- lists:seq(1, 60)],
    [W(oset, {oset, I, <<I:32>>}) || I <- lists:seq(1, 100)],
    [W(dset, {dset, I, v, [I]}) || I <- lists:seq(1, 400)],
    [W(obag, {obag, I rem 5, I}) || I <- lists:seq(1, 40)],
    [W(other_name, {rec, I, I * I}) || I <- lists:seq(1, 20)],
    [W(ram, {ram, I, I}) || I <- lists:seq(1, 10)],
    [W(idx, {idx, I, I rem 3}) || I <- lists:seq(1, 30)],
    mnesia:dump_log(),                                  %% -> DCD / DAT
    ok = mnesia:dirty_delete(user, 3),
    ok = mnesia:dirty_delete_object({dbag, 1, {v, 8}}),
    W(dbag, {dbag, 1, {v, 1}}),                          %% already there: a bag keeps one
    W(dbag, {dbag, 1, {v, new}}),
    {atomic, ok} = mnesia:transaction(fun() ->
        mnesia:write(#user{id = 2, name = <<"two">>, tags = []}),
        mnesia:delete({oset, 50}),
        mnesia:write({dset, 7, changed, []}),
        mnesia:delete_object({obag, 3, 3})
    end),
    mnesia:dump_log(),                                  %% -> DCL
    {atomic, ok} = mnesia:clear_table(other_name),
    W(other_name, {rec, after_clear, 1}),
    ok = mnesia:dirty_delete(dset, 9),
    W(dset, {dset, 9, back, [again]}),
    ok = mnesia:dirty_delete_object({dset, 10, v, [10]}),
    %% touching disc_copies and disc_only_copies tables: logged as presume_abort
    %% with a decision record after it
    {atomic, ok} = mnesia:transaction(fun() ->
        [mnesia:delete({user, I}) || I <- lists:seq(100, 110)],
        mnesia:write({dset, txn, both, []})
    end),
    W(user, #user{id = 1000, name = binary:copy(<<"x">>, 70000), tags = big}), %% >= 64 KiB item
    W(dset, {dset, big, binary:copy(<<"y">>, 100000), []}),
    crash().

%% The counter rule for disc_only tables (dets_incr_counter) next to ets's.
counters() ->
    start(),
    N = [node()],
    {atomic, ok} = mnesia:create_table(cc, [{disc_copies, N}, {attributes, [k, v]}]),
    {atomic, ok} = mnesia:create_table(dc, [{disc_only_copies, N}, {attributes, [k, v]}]),
    mnesia:dump_log(),
    [mnesia:dirty_update_counter(T, a, 5) || T <- [cc, dc]],
    mnesia:dump_log(),
    [mnesia:dirty_update_counter(T, a, 7) || T <- [cc, dc]],       %% only in the log
    [mnesia:dirty_update_counter(T, b, -3) || T <- [cc, dc]],      %% missing, negative
    [ok = mnesia:dirty_write({T, c, 10}) || T <- [cc, dc]],
    [mnesia:dirty_update_counter(T, c, 4) || T <- [cc, dc]],       %% written in this pass
    [mnesia:dirty_update_counter(T, c, -20) || T <- [cc, dc]],     %% below zero
    [ok = mnesia:dirty_write({T, d, not_a_number}) || T <- [cc, dc]],
    [catch mnesia:dirty_update_counter(T, d, 1) || T <- [cc, dc]],
    crash().

%% Items of 64 KiB and more everywhere.
big() ->
    start(),
    N = [node()],
    {atomic, ok} = mnesia:create_table(bc, [{disc_copies, N}, {attributes, [k, v]}]),
    {atomic, ok} = mnesia:create_table(bd, [{disc_only_copies, N}, {attributes, [k, v]}]),
    [ok = mnesia:dirty_write({T, I, binary:copy(<<I>>, 65000 + I * 1000)}) || T <- [bc, bd], I <- lists:seq(1, 5)],
    mnesia:dump_log(),
    [ok = mnesia:dirty_write({T, I, binary:copy(<<I>>, 200000)}) || T <- [bc, bd], I <- lists:seq(3, 8)],
    mnesia:dump_log(),
    [ok = mnesia:dirty_write({T, I, binary:copy(<<I>>, 300000)}) || T <- [bc, bd], I <- lists:seq(7, 9)],
    crash().

%% A clean stop: everything closed, nothing pending.
clean() ->
    start(),
    tables(),
    [ok = mnesia:dirty_write(user, #user{id = I, name = integer_to_binary(I), tags = []}) || I <- lists:seq(1, 50)],
    [ok = mnesia:dirty_write({dset, I, v, w}) || I <- lists:seq(1, 50)],
    Tabs = [T || T <- mnesia:system_info(local_tables), T =/= schema,
                 mnesia:table_info(T, storage_type) =/= ram_copies],
    Truth = [{T, mnesia:dirty_match_object(T, mnesia:table_info(T, wild_pattern))} || T <- Tabs],
    Dir = filename:dirname(mnesia:system_info(directory)),
    ok = file:write_file(filename:join(Dir, "truth.etf"), term_to_binary(Truth)),
    stopped = mnesia:stop(),
    erlang:halt(0).

%% Values of every kind that a text dump must carry exactly: UTF-8 and
%% binary data, bitstrings, escapes, big integers, floats, maps, unicode
%% atoms, improper lists, external funs; in a disc_copies, a disc_only_copies
%% and a RAM table.
varied() ->
    start(),
    N = [node()],
    {atomic, ok} = mnesia:create_table(vd, [{disc_copies, N}, {attributes, [k, v]}]),
    {atomic, ok} = mnesia:create_table(vo, [{disc_only_copies, N}, {attributes, [k, v]}]),
    {atomic, ok} = mnesia:create_table(vr, [{ram_copies, N}, {record_name, vrec}, {attributes, [k, v]}]),
    Values = [<<"café ☃"/utf8>>, <<0, 128, 159, 160, 255>>, <<1:3>>, <<255, 7:3>>, <<>>,
              list_to_binary(lists:seq(0, 255)), binary:copy(<<"é"/utf8>>, 200),
              "quote \" back \\ newline \n tab \t", [233, 256, 8364], "", [],
              1 bsl 100, -(1 bsl 70), 3.14, 1.0e-300, 2.5e22, -7, 0.1 + 0.2,
              #{a => 1, <<"k">> => [x], {t, 1} => #{}},
              'Quoted Atom', 'été', list_to_atom([1092, 1091]), '',
              [a | b], {}, {a, {b, {c, [d, <<"e">>]}}}, fun erlang:node/0,
              lists:seq(1, 300), lists:duplicate(50, {item, <<"text">>, 1.5}),
              {xmlel, <<"message">>, [{<<"to">>, <<"bob@example.com">>}, {<<"type">>, <<"chat">>}],
               [{xmlel, <<"body">>, [], [{xmlcdata, <<"Grüße, 世界"/utf8>>}]}]}],
    Indexed = lists:zip(lists:seq(1, length(Values)), Values),
    [ok = mnesia:dirty_write({T, {K, T}, V}) || {K, V} <- Indexed, T <- [vd, vo]],
    [ok = mnesia:dirty_write(vr, {vrec, K, V}) || {K, V} <- Indexed],
    crash().

%% A fresh node loads a text dump with mnesia:load_textfile/1 and writes
%% what every table then holds (all of them: loaded tables are RAM tables).
loadtext([File, Out]) -> guarded(fun() -> loadtext(File, Out) end).

loadtext(File, Out) ->
    ok = mnesia:create_schema([node()]),
    ok = mnesia:start(),
    {atomic, ok} = mnesia:load_textfile(File),
    Tabs = [T || T <- mnesia:system_info(tables), T =/= schema],
    R = [{T, mnesia:dirty_match_object(T, mnesia:table_info(T, wild_pattern))} || T <- Tabs],
    ok = file:write_file(Out, term_to_binary(R)),
    erlang:halt(0).

%% The oracle: what Mnesia loads from the directory.
oracle([Out]) -> guarded(fun() -> oracle1(Out) end).

oracle1(Out) ->
    ok = mnesia:start(),
    Tabs = [T || T <- mnesia:system_info(tables), T =/= schema,
                 lists:member(mnesia:table_info(T, storage_type), [disc_copies, disc_only_copies])],
    case mnesia:wait_for_tables(Tabs, 30000) of
        ok ->
            R = [{T, mnesia:dirty_match_object(T, mnesia:table_info(T, wild_pattern))} || T <- Tabs],
            ok = file:write_file(Out, term_to_binary(R));
        {timeout, Bad} ->
            ok = file:write_file(Out, term_to_binary({timeout, Bad}))
    end,
    erlang:halt(0).

%% mnesia:backup/1 and dump_to_textfile/1 of a running node (for the
%% backup and dump readers).
dump([Dir]) -> guarded(fun() -> dump1(Dir) end).

dump1(Dir) ->
    ok = mnesia:start(),
    ok = mnesia:wait_for_tables(mnesia:system_info(tables), 30000),
    ok = mnesia:backup(filename:join(Dir, "backup.BUP")),
    ok = mnesia:dump_to_textfile(filename:join(Dir, "dump.txt")),
    erlang:halt(0).

%% A fresh node (empty Mnesia directory) takes a backup and reports what it
%% then holds, like oracle/1. Mode restore: mnesia:restore/2 with
%% recreate_tables on a running node; mode fallback: install_fallback/1 and
%% a restart of Mnesia.
restore([File, Out, Mode]) -> guarded(fun() -> restore(File, Out, Mode) end).

restore(File, Out, Mode) ->
    ok = mnesia:create_schema([node()]),
    case Mode of
        "restore" ->
            ok = mnesia:start(),
            %% idx (a disc_only table with an index) is skipped: restoring it
            %% with recreate_tables on a fresh node crashes Mnesia 4.21.3 with
            %% {no_exists,{idx,commit_work}}, whoever wrote the backup
            %% (mnesia:backup/1's own file included).
            {atomic, _} = mnesia:restore(File, [{default_op, recreate_tables}, {skip_tables, [idx]}]);
        "fallback" ->
            ok = mnesia:start(),
            ok = mnesia:install_fallback(File),
            stopped = mnesia:stop(),
            ok = mnesia:start()
    end,
    oracle1(Out).

%% A commit that is in the transaction log but not yet in the table's RAM
%% copy when the log is dumped: the interleaving of a committing process
%% descheduled between mnesia_log:log/1 and its ETS insert (mnesia_tm logs
%% a commit, then applies it). When the dump finds the table's DCL large
%% (needs_dump_ets), it rewrites the DCD from RAM and skips the table's
%% logged operations: the commit is in neither file, only in RAM. Simulated
%% here by logging the commit record by hand, dumping, then inserting.
inflight() -> inflight(false).

%% The same with a DCL small enough that the dump appends to it: the commit
%% reaches the DCL.
inflight_appended() -> inflight(true).

inflight(Appended) ->
    %% No dump but ours: which of them rewrites the DCD must not depend on
    %% when the write threshold fires.
    ok = application:load(mnesia),
    ok = application:set_env(mnesia, dump_log_write_threshold, 1000000),
    start(),
    {atomic, ok} = mnesia:create_table(t, [{disc_copies, [node()]}, {attributes, [k, v]}]),
    [{atomic, ok} = mnesia:transaction(fun() -> mnesia:write({t, I, <<"v">>}) end) || I <- lists:seq(1, 1000)],
    dumped = mnesia:dump_log(),
    case Appended of
        true -> % one more dump rewrites the DCD: the next one appends to a new DCL
            ok = mnesia:dirty_write({t, 0, <<"v">>}),
            dumped = mnesia:dump_log();
        false -> ok
    end,
    Rec = {t, in_flight, <<"committed">>},
    mnesia_log:log({commit, node(), presume_commit, [], [{{t, in_flight}, Rec, write}], [], [], []}),
    dumped = mnesia:dump_log(),
    true = ets:insert(t, Rec),
    crash().

%% guarded runs F and halts with status 1 on any exception (a -run function
%% that crashes would otherwise leave the node running).
guarded(F) ->
    try F()
    catch C:R:S ->
        io:format(standard_error, "mgen: ~p:~p~n~p~n", [C, R, S]),
        erlang:halt(1)
    end.
