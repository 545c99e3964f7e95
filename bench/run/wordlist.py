"""The words synthetic prompts are made of (``bench.run.synthetic``): 1561 common English words.

Chosen to be cheap and regular for tokenizers: everyday words that a large-vocabulary tokenizer keeps
whole, written both lower-case and capitalized (checked against Gemma 3's 262k vocabulary, where each
one, with a leading space, is a single token in both spellings). Regular words make the token count
of a prompt a near-linear function of its word count, which is what two calibration probes can fit.

Changing this list changes every synthetic prompt: ``WORDS_DIGEST`` is stored in each planned
synthetic request, so ``--resume`` refuses to rebuild a prompt from a different list.
"""

from __future__ import annotations

import hashlib

_TEXT = """
    able about above absence accept accident account achieve acid acre across act action active activity
    adapt add address admit adopt adult advance adventure advice affect after afternoon again against age
    agency agent ago agree ahead air alarm album alert alive all alley allow almost alone along already also
    although always amazing amber among amount analysis ancient and angle animal annual another answer any
    anyone anything apart appeal appear appetite apple apply approach arch area arena arm army around arrow
    art article artist as aside ask assume at atlas attack attention attic audience aunt author autumn
    available average avoid awake award aware away baby back bad bag balance ball bamboo banana band bank
    banner bar barn barrel base basic basin basket batch battery bay beach bean bear beard beat beautiful
    beauty because become bed bee beef before begin behind believe bell below belt bench benefit berry best
    better between beyond bicycle big bike bill bird birth bit bite black blade blanket blend blind block
    bloom blue board boat body boil bold bone bonus book boot border born borrow boss both bottle bottom
    bounce bowl box boy bracket brain branch brave bread break breakfast breeze brick bride bridge brief
    bright bring broad brother brown brush bubble bucket budget buffer build building bulb bundle burden
    burn bus business busy but butter button buy by cabin cabinet cable cafe cake calendar call calm camera
    camp campaign can canal candle candy canvas canyon cape capital captain car carbon card care career
    cargo carpet carrot carry case castle casual cat catch cattle cause cave cedar ceiling cell center
    central century certain chain chair chalk challenge chance change channel chapel chapter character
    charge chart chase cheap check cheese cherry chest chicken chief child choice choose chorus church
    cinema circle citizen citrus city civil claim class classic clay clean clear clever cliff climate climb
    clinic clip clock close cloth cloud club coach coal coast coat coconut code coffee coin cold collar
    collect college color column come comet comfort comic common community company compare compass complete
    computer concern concert condition cone consider contain continue control cook cool copper copy coral
    cord cork corn corner correct cost cottage cotton couch could count counter country couple courage
    course court cousin cover cow crack craft crane cream create creek crew cricket crisp crop cross crowd
    crystal cube culture cup current curtain curve cushion custom customer cut cycle daily dairy daisy
    damage dance dark data daughter dawn day dead deal dear debate decade decide deck deep deer degree delay
    deliver delta demand dense depend describe desert design desk detail develop diamond diary difference
    different difficult dinner direct direction discover discuss disease dish distance do dock doctor dog
    dolphin dome donkey door double down drama draw drawer dream dress drift drill drink drive drop drum dry
    duck during dust duty each eagle ear early earth east easy eat echo economy edge education effect effort
    egg eight either elbow elder election else empty end energy engine enjoy enough enter entire envelope
    environment equal escape essay even evening event ever every everyone evidence exact example exercise
    exist expect experience expert explain eye fabric face fact factor fail fair fairy falcon fall fame
    family famous fan far farm fast father fear feather feature feel fence festival few fiber field fig
    fight figure fill film filter final finally find fine finger finish fire firm first fish five fix flag
    flame flash flat fleet floor flour flow flower fly foam focus fog folder follow food foot for force
    forest forget fork form former fortune forward fountain four fox frame free fresh friend from front
    frost fruit full fun funny future gain gallery game garage garden garlic gate gather gear general gentle
    get giant gift ginger girl give glacier glad glass globe glove glue go goal goat gold good government
    grain grand grape graph grass gravel great green grid ground group grow growth guard guess guest guide
    guitar gulf habit hair half hall hammer hand handle happen happy harbor hard harvest hat have hawk hay
    he head health hear heart heat heavy hedge helmet help her herb here hero high highway hill him his
    history hobby hold hole holiday home honest honey hook hope horizon horn horse hospital host hot hotel
    hour house how however hub huge human humor hundred hunt husband hut ice icon idea if image imagine
    important improve in include increase indeed industry ink insect inside instead interest into iron
    island issue it item its ivory jacket jar jazz jelly jewel job join journey joy judge juice jump jungle
    just keep kernel kettle key kid kind king kitchen kite knee knife knot know lab label ladder lady lake
    lamp land lane language large laser last late later laugh lava law lawn layer lead leader leaf learn
    least leave left leg lemon lens less lesson let letter level library life light like likely lily limb
    line linen lion liquid list listen little live lobby local lock lodge log long look loop lose loss lot
    loud love low lucky lumber lunch machine magazine magnet main major make man manage mango manner many
    map maple marble margin market marsh mask material matter may maybe meadow meal mean measure meat media
    meet meeting melon member memory mention menu mercy message metal method middle might mild mile milk
    mill mind mineral mint minute mirror miss mist model modern moment money month moon more morning moss
    most mother motion motor mountain mouse mouth move movie much mud mug muscle museum music must my myth
    nail name narrow nation natural nature near nearly neck need needle neighbor nest network never new news
    next nice nickel night nine no noise none noon normal north nose not note nothing notice novel now
    number nurse oak oat object ocean of off offer office officer often oil old olive on once one onion only
    open opinion option or orange orbit orchard order organ other our out outside oven over owl own owner
    oyster paddle page paint pair palace palm panel paper parade parcel parent park part partner party pass
    past path patient pattern pay peace peach peak pear pearl pebble pen pencil people pepper per perfect
    perhaps period person phone photo piano pick picture piece pier pillow pilot pine pink pipe pirate place
    plan plane planet plant plate play player plaza please pleasure plenty plum pocket poem poet point
    police policy polite pond pool poor popular portrait position possible post pot potato pound powder
    power practice prairie prepare present president press pretty price pride print private prize problem
    process produce product program project promise proper protect proud prove provide public pull purple
    purpose push put puzzle pyramid quality quarter question quick quiet quite rabbit race radar radio rail
    rain rainbow raise ranch range rapid rate rather raven reach read ready real reason receive recent
    recipe record red reduce reef region remain remember remove repeat report rest result return ribbon rice
    rich ride ridge right ring ripple rise risk river road robot rock rocket rod role roof room root
    rope rose round row ruby rug rule run saddle safe sail salad salmon salt same sand sauce save say scale
    scene school science score scout screen sculpture sea season seat second secret section see seed sell
    send sense series serve service set seven several shadow shake shape share shark she shed sheep shelf
    shell shelter shield shift ship shirt shoe shop shore short should shoulder show shrimp side sign signal
    silent silver simple since sing single sister sit site six size sketch ski skill skin sky slate sleep
    sleeve slope slow small smart smile snack snow so soap sock sofa soft soil soldier some someone
    something sometimes son song soon sort sound soup source south space speak special speech speed spend
    spice spider spirit spoon sport spring square squirrel stable stadium staff stage stair stamp stand star
    start state station stay steady steam steel stem step stick still stock stone stop store storm story
    stove straight strange straw stream street string strong student studio study style subject success such
    sudden sugar suggest suit summer summit sun sunset supply support sure surface surprise swamp sweater
    sweet swim swing symbol syrup system table tablet tail take talk tall tank tape task taste tax tea teach
    teacher team tell temple ten tennis tent term test than thank that the theater their them then theory
    there these they thing think third this those though thought thousand thread three through throw thunder
    ticket tide tie tiger timber time tiny tired title to toast today together token tomato tomorrow tone
    tonight too tool top torch total touch tour toward tower town toy track trade trail train travel tray
    treasure tree tribe trip trophy truck true trunk trust truth try tulip tunnel turkey turn turtle twelve
    twenty two type umbrella uncle under understand union unit until up upon use useful usual valley value
    various vase vegetable velvet very vessel view village vine violin visit voice volcano vote wagon wait
    walk wall walnut want warm wash watch water wave wax way we wealth wear weather week weight welcome well
    west wet whale what wheat wheel when where whether which while white who whole why wide wife wild will
    willow win wind window wine wing winter wire wise wish with within without wolf woman wonder wood wooden
    wool word work worker world worry would write writer wrong yard year yellow yes yesterday yet yogurt you
    young your youth zebra zone
"""

WORDS: tuple[str, ...] = tuple(_TEXT.split())
WORDS_DIGEST = hashlib.sha256(" ".join(WORDS).encode()).hexdigest()[:16]
