#!/usr/bin/env escript
%% Test oracle for term.Pretty: what io_lib:format("~p", [T]) prints.
%%
%%   escript pretty.escript SEED COUNT OUT
%%     Writes to OUT, as one external term, a list of {Term, Printed} where
%%     the terms are a fixed set of hand-picked ones followed by COUNT random
%%     terms drawn with SEED, and Printed is the ~p text as a latin-1 binary
%%     (that is what a file opened without an encoding receives, as in
%%     mnesia:dump_to_textfile and ejabberdctl dump).
main([Seed, Count, Out]) ->
    rand:seed(exsss, {list_to_integer(Seed), 7, 11}),
    Terms = fixed() ++ [term(3) || _ <- lists:seq(1, list_to_integer(Count))],
    Rows = [{T, list_to_binary(lists:flatten(io_lib:format("~p", [T])))} || T <- Terms],
    ok = file:write_file(Out, term_to_binary(Rows)).

fixed() ->
    Long = lists:seq(1, 60),
    [ok, 'hello world', 'été', list_to_atom([1092, 1091]), 1 bsl 80, -3,
     0.1, 1.0e22, 1.0e23, 9007199254740992.0, 9007199254740993.0 * 2, 123456.0,
     1.0e-5, 0.001, 5.0e-324, 1.7976931348623157e308, -0.0, 100.0, 1.0e15, 1.0e16,
     "abc", "tab\there\n", [233, 160, 255], [127], [128], [256, 300], [a | b],
     [1, 2 | <<"tail">>], <<>>, <<"hello">>, <<"caf", 195, 169>>, <<0, 1, 2>>,
     <<1:3>>, <<255, 3:2>>, list_to_binary(Long), list_to_binary(lists:seq(0, 255)),
     #{}, #{a => 1}, #{[I || I <- Long] => {x, Long}, b => <<"v">>},
     {}, {a}, {passwd, {<<"user">>, <<"example.com">>}, <<"secret">>},
     {passwd, {<<"alice">>, <<"example.com">>},
      {scram, <<"c3RvcmVka2V5c3RvcmVka2V5c3RvcmVka2V5">>,
       <<"c2VydmVya2V5c2VydmVya2V5c2VydmVya2V5">>, <<"c2FsdHNhbHRzYWx0">>, sha, 4096}},
     {roster, {<<"alice">>, <<"example.com">>, {<<"bob">>, <<"example.com">>, <<>>}},
      {<<"alice">>, <<"example.com">>}, {<<"bob">>, <<"example.com">>, <<>>},
      <<"Bob">>, both, none, [<<"Friends">>, <<"Work">>], <<>>, [], []},
     {offline_msg, {<<"alice">>, <<"example.com">>}, {1700, 1234, 5678}, never,
      {jid, <<"bob">>, <<"example.com">>, <<"res">>, <<"bob">>, <<"example.com">>, <<"res">>},
      {jid, <<"alice">>, <<"example.com">>, <<>>, <<"alice">>, <<"example.com">>, <<>>},
      {message, <<"id1">>, chat, <<"en">>, undefined, undefined,
       [{text, <<"en">>, <<"Hello there, this is a message body that is rather long">>}],
       [], [], [], #{}}, []},
     {a_very_long_record_name_that_goes_on_and_on, Long, Long},
     {Long, Long}, [Long, [Long, [Long]]], lists:duplicate(40, {a, b}),
     c:pid(0, 42, 7), make_ref(), fun erlang:node/0, list_to_binary(lists:duplicate(300, 7)),
     [list_to_binary(lists:seq(1, 100))], {tag, list_to_binary(lists:seq(1, 100))},
     #{key => list_to_binary(lists:seq(1, 100)), {Long} => [Long]}].

term(0) -> leaf();
term(D) ->
    case rand:uniform(10) of
        N when N =< 3 -> leaf();
        4 -> [term(D - 1) || _ <- lists:seq(1, rand:uniform(12) - 1)];
        5 -> list_to_tuple([term(D - 1) || _ <- lists:seq(1, rand:uniform(10) - 1)]);
        6 -> list_to_tuple([tag() | [term(D - 1) || _ <- lists:seq(1, rand:uniform(9))]]);
        7 -> maps:from_list([{term(D - 1), term(D - 1)} || _ <- lists:seq(1, rand:uniform(6) - 1)]);
        8 -> lists:foldr(fun(E, Acc) -> [E | Acc] end, leaf(),
                         [term(D - 1) || _ <- lists:seq(1, rand:uniform(5))]);
        9 -> {tag(), term(D - 1)};
        10 -> [term(D - 1) || _ <- lists:seq(1, rand:uniform(25))]
    end.

tag() ->
    lists:nth(rand:uniform(6), [a, passwd, roster, offline_msg,
                                very_long_tag_name_here, 'Quoted Tag']).

leaf() ->
    case rand:uniform(16) of
        1 -> lists:nth(rand:uniform(5), [ok, undefined, 'with space', '', 'été']);
        2 -> rand:uniform(1000) - 500;
        3 -> rand:uniform(1 bsl 70);
        4 -> float();
        5 -> str();
        6 -> list_to_binary(str());
        7 -> list_to_binary([rand:uniform(256) - 1 || _ <- lists:seq(1, rand:uniform(30))]);
        8 -> list_to_binary([rand:uniform(256) - 1 || _ <- lists:seq(1, rand:uniform(200))]);
        9 -> <<(rand:uniform(255)), (rand:uniform(100)):(rand:uniform(7))>>;
        10 -> [rand:uniform(300) || _ <- lists:seq(1, rand:uniform(10))];
        11 -> list_to_binary(lists:duplicate(rand:uniform(120), $x));
        12 -> [];
        13 -> c:pid(0, rand:uniform(5000), rand:uniform(3) - 1);
        14 -> <<>>;
        15 -> lists:duplicate(rand:uniform(100), $y);
        16 -> {}
    end.

float() ->
    case rand:uniform(5) of
        1 -> rand:uniform() * 1000;
        2 -> float(rand:uniform(100000));
        3 -> rand:uniform() * math:pow(10, rand:uniform(600) - 300);
        4 -> -rand:uniform() / 1000;
        5 -> float(rand:uniform(1 bsl 60))
    end.

str() ->
    [lists:nth(rand:uniform(8), "ab \"\\\n\t\351") || _ <- lists:seq(1, rand:uniform(25))].
