"""The broker's job shells: placement rounds, site tracking, liveness and the effect driver.

Each turns what happens into lifecycle stimuli (broker.control) and carries out the effects.
"""
