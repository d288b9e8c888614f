"""Bandits & DQN: policy generations of a contextual bandit with their off-policy forecasts, and the deep-Q
pairs agent's spread, z-score, actions and PnL."""
from __future__ import annotations

import streamlit as st

from app.dashboard import bandits_data as B
from app.dashboard.ui import error_boundary

st.title("Bandits & DQN")


@st.cache_data(show_spinner="Simulating policy generations...", max_entries=8)
def cached_generations(policy: str, n_generations: int, rounds: int, memory: str, floor: float, seed: int):
    return B.generations(policy=policy, n_generations=n_generations, rounds=rounds, memory=memory, floor=floor,
                         seed=seed)


@st.cache_data(show_spinner="Replaying the pairs agent...", max_entries=8)
def cached_pairs(spec: str, model: str, last: int, fees: float):
    return B.pairs_view(spec, model, last=last, fees=fees)


st.subheader("Contextual bandit: policy generations")
st.caption("Each generation acts on fresh rounds of a synthetic problem (rl.bandits.SyntheticProblem), logs "
           "its decisions, and the next one is retrained on those logs. Before a new policy is deployed, "
           "IPS, SNIPS and DR estimate its value from the previous generation's logs (95% bootstrap intervals).")
with error_boundary("Bandit generations"):
    c = st.columns(6)
    policy = c[0].selectbox("Policy", ["squarecb", "epsilon_greedy", "linucb"], key="bd_policy")
    n_gen = c[1].number_input("Generations", 2, 30, 8, key="bd_gen")
    rounds = c[2].number_input("Rounds per generation", 200, 20_000, 1000, step=200, key="bd_rounds")
    memory = c[3].selectbox("Retrain on", ["last", "all"], key="bd_memory",
                            help="last: the previous generation's logs only (Adyen's setting); all: every log")
    floor = c[4].number_input("Exploration floor", 0.0, 1.0, 0.0, step=0.05, key="bd_floor")
    seed = c[5].number_input("Seed", 0, 10_000, 0, key="bd_seed")
    frame = cached_generations(policy, int(n_gen), int(rounds), memory, float(floor), int(seed))
    left, right = st.columns(2)
    left.plotly_chart(B.generations_figure(frame), key="bd_gen_chart")
    right.plotly_chart(B.ope_figure(frame), key="bd_ope_chart")
    st.dataframe(frame.round(4), key="bd_table")

st.subheader("Deep-Q pairs agent")
with error_boundary("Pairs agent"):
    from markets.home import data_home

    c = st.columns(4)
    models = B.model_choices(data_home("runs"))
    model = c[0].selectbox("Model", models, key="bd_model",
                           help="default: the model shipped with DREX; or a run of `drex train dqn`")
    spec = c[1].text_input("Data", "synth:pairs", key="bd_spec")
    last = c[2].number_input("Last bars", 300, 100_000, 3000, step=500, key="bd_last")
    fees = c[3].number_input("Fees", 0.0, 0.01, 0.0001, step=0.0001, format="%.4f", key="bd_fees")
    view = cached_pairs(spec, model, int(last), float(fees))
    y, x = view["pair"]
    st.caption(f"Pair {y}/{x}, {view['algo']}; decisions use only bars up to each row; costs {fees:g} per side.")
    st.plotly_chart(B.pairs_figure(view), key="bd_pairs_chart")
    st.dataframe(view["metrics"].loc[["total_return", "sharpe", "max_drawdown", "cvar_5", "n_trades"]],
                 key="bd_pairs_metrics")
